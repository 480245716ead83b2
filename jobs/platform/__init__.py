"""Shared plumbing every stage uses, and no stage logic.

``spark`` (the one SparkSession factory), ``lakehouse`` (Delta tables, atomic partition writes,
versions, the table report), ``opslog`` (``ops.ingestion_log``), ``tracking`` (MLflow client and
every tag, metric and alias name), ``dbt_runner`` (dbt in the project's Spark session), ``gx``
(Great Expectations context and suites), ``logs`` (``setup_logging`` for every command line).
"""
