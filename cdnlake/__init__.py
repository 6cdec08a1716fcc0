"""cdnlake's orchestration-side library: everything that is neither a Prefect flow (flows/), a Spark
job (spark_jobs/) nor the report (reporting/): settings, storage, integrations, the CLI."""
