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

from jobs.config import Settings, get_settings

log = logging.getLogger(__name__)

SCHEMAS = ("bronze", "quarantine", "ops")


class SparkJarsMissing(RuntimeError):
    """Raised when the Delta jars were never resolved into the local cache."""


def delta_jars(settings: Settings) -> list[Path]:
    jars = sorted(settings.spark_jars_dir.glob("*.jar"))
    if not any(j.name.startswith("delta-spark_") for j in jars):
        raise SparkJarsMissing(
            f"Delta jars not found in {settings.spark_jars_dir}: run `make setup` (or `make jars`) to resolve them."
        )
    return jars


def get_spark(settings: Settings | None = None, app_name: str = "fraud-pipeline"):
    """Return the process's SparkSession, creating it with the project's configuration if needed."""
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    jars = delta_jars(settings)
    settings.lakehouse_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    log4j = Path(__file__).resolve().parent / "conf" / "log4j2.properties"
    java_opts = f"{settings.spark_java_opts} -Dlog4j.configurationFile={log4j} -Dderby.system.home={settings.lakehouse_dir} -Dderby.stream.error.file={settings.lakehouse_dir / 'derby.log'}"
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.jars", ",".join(str(j) for j in jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.warehouse.dir", str(settings.warehouse_dir))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={settings.metastore_dir};create=true",
        )
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, settings.spark_shuffle_partitions)))
        .config("spark.ui.enabled", str(settings.spark_ui_enabled).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .enableHiveSupport()
    )
    if settings.spark_master.startswith("local"):
        # One machine: bind the driver to loopback instead of whatever the hostname resolves to.
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    for schema in SCHEMAS:
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema} LOCATION '{settings.lakehouse_dir / schema}'")
    log.info("SparkSession ready: master=%s lakehouse=%s", settings.spark_master, settings.lakehouse_dir)
    return spark


def stop_spark() -> None:
    """Stop the active session (releases the Derby metastore lock for the next process)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
