"""The one SparkSession factory: Delta Lake, a Hive metastore under the lakehouse root, offline jars.

Delta's jars are resolved once by ``make setup`` (Maven, see ``build/pom.xml``) into
``PIPELINE_SPARK_JARS_DIR`` and handed to Spark through ``spark.jars``: no session start-up
downloads anything. The embedded Derby metastore admits one JVM at a time, which is why the DAGs
run Spark tasks through a one-slot pool.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from jobs.config import CONF_DIR, Settings, get_settings
from jobs.platform.lakehouse import register_path_tables

log = logging.getLogger(__name__)

SCHEMAS = ("bronze", "quarantine", "ops", "features")  # dbt creates staging, intermediate, marts


class SparkJarsMissing(RuntimeError):
    """Raised when the Delta jars were never resolved into the local cache."""


def delta_jars(settings: Settings) -> list[Path]:
    jars = sorted(settings.spark.jars_dir.glob("*.jar"))
    if not any(j.name.startswith("delta-spark_") for j in jars):
        raise SparkJarsMissing(
            f"Delta jars not found in {settings.spark.jars_dir}: run `make setup` (or `make jars`) to resolve them."
        )
    return jars


def spark_conf(settings: Settings | None = None) -> dict[str, str]:
    """The project's Spark configuration as plain key/values.

    ``get_spark`` builds its session from it, and ``jobs.platform.dbt_runner`` hands the same dict to dbt-spark's
    session connection (``server_side_parameters``), so dbt and the Python jobs see one catalog.
    """
    settings = settings or get_settings()
    spark, storage = settings.spark, settings.storage
    jars = delta_jars(settings)
    log4j = CONF_DIR / "log4j2.properties"
    java_opts = (
        f"{spark.java_opts} -Dlog4j.configurationFile={log4j} -Dderby.system.home={storage.lakehouse_dir}"
        f" -Dderby.stream.error.file={storage.lakehouse_dir / 'derby.log'}"
    ).strip()
    conf = {
        "spark.master": spark.master,
        "spark.app.name": "fraud-pipeline",
        "spark.jars": ",".join(str(j) for j in jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.warehouse.dir": str(storage.warehouse_dir),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={storage.metastore_dir};create=true",
        "spark.driver.extraJavaOptions": java_opts,
        "spark.driver.memory": spark.driver_memory,
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.default.parallelism": str(max(2, spark.shuffle_partitions)),
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta rebuilds a table's snapshot state (a Spark job) on every overwrite, merge and
        # delete; its default of 50 partitions makes each of those cost ~5 s on 2 cores.
        "spark.databricks.delta.snapshotPartitions": str(spark.shuffle_partitions),
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
    }
    if spark.master.startswith("local"):
        # One machine: bind the driver to loopback instead of whatever the hostname resolves to.
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    return {**conf, **spark.properties}


def get_spark(settings: Settings | None = None, app_name: str = "fraud-pipeline"):
    """Return the process's SparkSession, creating it with the project's configuration if needed."""
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    active = SparkSession.getActiveSession()
    if active is None:
        settings.storage.lakehouse_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
        builder = SparkSession.builder
        for key, value in {**spark_conf(settings), "spark.app.name": app_name}.items():
            builder = builder.config(key, value)
        active = builder.enableHiveSupport().getOrCreate()
        active.sparkContext.setLogLevel("WARN")
        log.info("SparkSession ready: master=%s lakehouse=%s", settings.spark.master, settings.storage.lakehouse_dir)
    ensure_schemas(active, settings)
    register_path_tables(active, settings)  # tables ingestion wrote without a JVM, visible to dbt and the jobs
    return active


_schemas_ready: set[str] = set()


def ensure_schemas(spark, settings: Settings | None = None) -> None:
    """Create the project's schemas (each at ``<lakehouse>/<schema>``) once per process.

    One ``SHOW SCHEMAS`` and a CREATE only for what is missing: a metastore call per schema costs
    about half a second at every session start.
    """
    settings = settings or get_settings()
    missing = [s for s in SCHEMAS if str(settings.storage.lakehouse_dir / s) not in _schemas_ready]
    if not missing:
        return
    existing = {row[0] for row in spark.sql("SHOW SCHEMAS").collect()}
    for schema in missing:
        location = settings.storage.lakehouse_dir / schema
        if schema not in existing:
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema} LOCATION '{location}'")
        _schemas_ready.add(str(location))


def stop_spark() -> None:
    """Stop the active session (releases the Derby metastore lock for the next process)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
