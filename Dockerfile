# syntax=docker/dockerfile:1.7
# One image for the Prefect flow runner and the Spark driver and executors (docs/kubernetes.md).
#
#   docker build -t cdnlake:$(git rev-parse --short HEAD) .
#
# Spark is the pyspark package pinned in uv.lock (a full Spark 4 distribution with the Kubernetes
# scheduler), run by Python 3.11 and a Java 17 JRE; the Delta and hadoop-aws jars are added at
# build time with pinned checksums, so containers never download anything.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------------------------------------
# build: the locked virtualenv. uv, its cache and the build tools stay out of the final image.
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/cdnlake/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
WORKDIR /opt/cdnlake
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY cdnlake ./cdnlake
COPY flows ./flows
COPY spark_jobs ./spark_jobs
COPY reporting ./reporting
# Installs the project itself (editable: the venv points at /opt/cdnlake, where the Spark
# Operator also finds local:///opt/cdnlake/spark_jobs/<job>.py), then pre-compiles it because
# the runtime user cannot write __pycache__ next to root-owned sources.
RUN uv sync --frozen --no-dev \
 && python -m compileall -q cdnlake flows spark_jobs reporting

# ---------------------------------------------------------------------------------------------
# jars: what spark.jars.packages of spark_jobs/session.py resolves (io.delta:delta-spark_4.1_2.13
# and org.apache.hadoop:hadoop-aws at DELTA_VERSION / HADOOP_VERSION, with their runtime
# dependencies), minus the artifacts pyspark already ships in its own jars/ folder.
# tests/test_dockerfile.py checks these coordinates against jar_packages().
FROM scratch AS jars
ADD --chmod=644 --checksum=sha256:75a9400986853c061f5109f012547de2545a5759e5e752e5ef633dabe16a4f10 https://repo1.maven.org/maven2/io/delta/delta-spark_4.1_2.13/4.4.0/delta-spark_4.1_2.13-4.4.0.jar /jars/
ADD --chmod=644 --checksum=sha256:c46735481fa8e326b0957be02b4420cbcab4b325bb08009b7f2045a95133f1cc https://repo1.maven.org/maven2/io/delta/delta-storage/4.4.0/delta-storage-4.4.0.jar /jars/
ADD --chmod=644 --checksum=sha256:ee9b5a14ac3b7efdff4d61a58478fe8eb0e5a3fbca43889dca7290795fe79a11 https://repo1.maven.org/maven2/io/delta/delta-kernel-api/4.4.0/delta-kernel-api-4.4.0.jar /jars/
ADD --chmod=644 --checksum=sha256:225c975199e4718b38ee5b7e6da7f19e9585024262b2cec2656b32151a856b0b https://repo1.maven.org/maven2/io/delta/delta-kernel-defaults/4.4.0/delta-kernel-defaults-4.4.0.jar /jars/
ADD --chmod=644 --checksum=sha256:cea22dfb4ac562b3cd27bf652697750e8336009d73fb06631363aaaad5345ffa https://repo1.maven.org/maven2/io/delta/delta-kernel-unitycatalog/4.4.0/delta-kernel-unitycatalog-4.4.0.jar /jars/
ADD --chmod=644 --checksum=sha256:48257499a86b801a3e2372cec55ac226ca1c1c7eabe5c118e7302f29a1fdbc19 https://repo1.maven.org/maven2/io/unitycatalog/unitycatalog-client/0.6.0/unitycatalog-client-0.6.0.jar /jars/
ADD --chmod=644 --checksum=sha256:c47b63c961c87102b9e1d63809a0915ba4c86b7652f57c8d39ca3a05b441a150 https://repo1.maven.org/maven2/io/unitycatalog/unitycatalog-hadoop/0.6.0/unitycatalog-hadoop-0.6.0.jar /jars/
ADD --chmod=644 --checksum=sha256:e58761751fea8a00dc626aae1c5f1be38c5cfd487aeb333d933a4ab5f5a73c55 https://repo1.maven.org/maven2/com/fasterxml/jackson/datatype/jackson-datatype-jdk8/2.13.5/jackson-datatype-jdk8-2.13.5.jar /jars/
ADD --chmod=644 --checksum=sha256:66d3c980470b99b0c511dad3dfc0ae7b265ec1fb144e96bc0253a8a175fd34d9 https://repo1.maven.org/maven2/commons-logging/commons-logging/1.3.0/commons-logging-1.3.0.jar /jars/
ADD --chmod=644 --checksum=sha256:e04ba5195bcd555dc95650f7cc614d151e4bcd52d29a10b8aa2197f3ab89ab9b https://repo1.maven.org/maven2/javax/annotation/javax.annotation-api/1.3.2/javax.annotation-api-1.3.2.jar /jars/
ADD --chmod=644 --checksum=sha256:0b82ed6cb1caf0706304b42358d568eb6faf190eadea7f2b2d365cb63156b40d https://repo1.maven.org/maven2/org/roaringbitmap/shims/0.9.25/shims-0.9.25.jar /jars/
ADD --chmod=644 --checksum=sha256:d2d24e6b715b5656b9d238bf13b6682a07e2004dd36aad74a73aeb854319f4d9 https://repo1.maven.org/maven2/org/apache/hadoop/hadoop-aws/3.4.2/hadoop-aws-3.4.2.jar /jars/
ADD --chmod=644 --checksum=sha256:62638f33045690c6bc5e496b54b0b2e89a9ad38cbedacdf6e017fea6bc85f55c https://repo1.maven.org/maven2/software/amazon/awssdk/bundle/2.29.52/bundle-2.29.52.jar /jars/
ADD --chmod=644 --checksum=sha256:11029552e37408e41e689b20150f4b372e0b4f232de321ccafd0fcf443cdfb5a https://repo1.maven.org/maven2/software/amazon/s3/analyticsaccelerator/analyticsaccelerator-s3/1.2.1/analyticsaccelerator-s3-1.2.1.jar /jars/
ADD --chmod=644 --checksum=sha256:95decbc5d088b40e85f58d7726b8c8f4e3be6312a0f2660c2d714a23cee80279 https://repo1.maven.org/maven2/org/wildfly/openssl/wildfly-openssl/2.1.4.Final/wildfly-openssl-2.1.4.Final.jar /jars/

# ---------------------------------------------------------------------------------------------
# runtime
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=185
# Debian slim images drop /usr/share/man, where the JRE's postinst links its man pages; without the
# folder the package fails to configure. procps: Spark's scripts call ps. tini: see entrypoint.sh.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini procps \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17 \
 && groupadd --gid "${APP_UID}" cdnlake \
 && useradd --uid "${APP_UID}" --gid "${APP_UID}" --create-home --home-dir /home/cdnlake \
            --shell /usr/sbin/nologin cdnlake

ENV JAVA_HOME=/usr/lib/jvm/java-17 \
    VIRTUAL_ENV=/opt/cdnlake/.venv \
    PATH=/opt/cdnlake/.venv/bin:$PATH \
    SPARK_HOME=/opt/cdnlake/.venv/lib/python3.11/site-packages/pyspark \
    SPARK_CONF_DIR=/opt/cdnlake/conf \
    PYSPARK_PYTHON=/opt/cdnlake/.venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/cdnlake/.venv/bin/python \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Root-owned code and jars: the application user can run them but not change them.
COPY --from=build /opt/cdnlake /opt/cdnlake
COPY --from=jars /jars/ /opt/cdnlake/.venv/lib/python3.11/site-packages/pyspark/jars/
COPY --chmod=644 k8s/image/spark-defaults.conf k8s/image/ivysettings.xml /opt/cdnlake/conf/
COPY --chmod=755 k8s/image/entrypoint.sh /opt/entrypoint.sh

USER ${APP_UID}:${APP_UID}
# Writable: the default ./data locations, spark-warehouse and Spark's scratch files go here.
WORKDIR /home/cdnlake
ENTRYPOINT ["/opt/entrypoint.sh"]
CMD ["cdnlake", "--help"]
