"""Where Spark jobs run: in this process (local, standalone) or as SparkApplications."""
