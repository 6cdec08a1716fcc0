#!/bin/bash
# Entrypoint of the cdnlake image (Prefect flow runs, Spark driver and executors).
#
# Spark on Kubernetes (spark-submit or the Spark Operator) starts this image's pods with the
# argument `driver` or `executor` and relies on the image to turn that into the JVM command, as
# the official Spark images' entrypoint.sh does; this is the same contract for an image whose
# Spark is the pyspark package of the locked virtualenv. Anything else (Prefect's
# `prefect flow-run execute`, `cdnlake run ...`) runs as given. tini reaps the Python workers
# Spark forks and forwards SIGTERM so a cancelled pod stops cleanly.
set -euo pipefail

case "${1:-}" in
  driver)
    shift
    # The driver pod runs the application in client mode against the Kubernetes API.
    cmd=("$SPARK_HOME/bin/spark-submit" --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS"
         --deploy-mode client "$@")
    ;;
  executor)
    shift
    # Spark passes the executor's JVM options as SPARK_JAVA_OPT_0..n, in order.
    mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/[^=]*=\(.*\)/\1/')
    classpath="${SPARK_CONF_DIR:-$SPARK_HOME/conf}:$SPARK_HOME/jars/*"
    if [ -n "${HADOOP_CONF_DIR:-}" ]; then classpath="$HADOOP_CONF_DIR:$classpath"; fi
    if [ -n "${SPARK_EXTRA_CLASSPATH:-}" ]; then classpath="$classpath:$SPARK_EXTRA_CLASSPATH"; fi
    cmd=("$JAVA_HOME/bin/java" "${java_opts[@]}" "-Xms$SPARK_EXECUTOR_MEMORY" "-Xmx$SPARK_EXECUTOR_MEMORY"
         -cp "$classpath" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
         --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" --cores "$SPARK_EXECUTOR_CORES"
         --app-id "$SPARK_APPLICATION_ID" --hostname "$SPARK_EXECUTOR_POD_IP"
         --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" --podName "$SPARK_EXECUTOR_POD_NAME")
    ;;
  *)
    cmd=("$@")
    ;;
esac

exec tini -s -- "${cmd[@]}"
