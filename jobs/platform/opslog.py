"""``ops.ingestion_log``: one row per ingestion attempt of a landing or reference file.

Written by :mod:`jobs.data.ingest` and :mod:`jobs.data.reference`: source, batch date, file and
checksum, status (``succeeded``/``failed``) and error, and the counts that must reconcile,
rows read = rows accepted + rows quarantined. The latest attempt of a file decides whether a
re-delivery with the same checksum can be skipped.
"""

from __future__ import annotations

from datetime import date

LOG_TABLE = "ops.ingestion_log"
LOG_DDL = """
        source STRING NOT NULL,
        batch_date DATE NOT NULL,
        source_file STRING NOT NULL,
        file_checksum STRING,
        status STRING NOT NULL,
        error STRING,
        rows_read BIGINT,
        rows_accepted BIGINT,
        rows_quarantined BIGINT,
        bronze_version BIGINT,
        quarantine_version BIGINT,
        validation_summary STRING,
        run_id STRING NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL
    """
SUCCEEDED, FAILED = "succeeded", "failed"


def append(spark, entry: dict) -> None:
    """Append one attempt (keys = the table's columns; missing keys are null)."""
    spark.sql(f"CREATE TABLE IF NOT EXISTS {LOG_TABLE} ({LOG_DDL}) USING DELTA")
    table = spark.table(LOG_TABLE)
    row = tuple(entry.get(c) for c in table.columns)
    spark.createDataFrame([row], table.schema).write.format("delta").mode("append").saveAsTable(LOG_TABLE)


def latest_attempt(spark, source: str, day: date | None = None) -> dict | None:
    """The latest attempt for ``source`` (and ``batch_date = day`` when given), or None."""
    if not spark.catalog.tableExists(LOG_TABLE):
        return None
    from pyspark.sql import functions as F

    rows = spark.table(LOG_TABLE).where(F.col("source") == source)
    if day is not None:
        rows = rows.where(F.col("batch_date") == F.lit(day))
    latest = rows.orderBy(F.col("finished_at").desc()).limit(1).collect()
    return latest[0].asDict() if latest else None


def succeeded_with(attempt: dict | None, checksum: str) -> bool:
    """True when ``attempt`` succeeded on a file with this checksum (a re-delivery can be skipped)."""
    return attempt is not None and attempt["status"] == SUCCEEDED and attempt["file_checksum"] == checksum


def reconciliation(spark) -> dict[str, int]:
    """Totals of the latest successful ingestion of each file: read, accepted, quarantined."""
    if not spark.catalog.tableExists(LOG_TABLE):
        return {"files": 0, "rows_read": 0, "rows_accepted": 0, "rows_quarantined": 0}
    row = spark.sql(
        f"""
        SELECT count(*) AS files, coalesce(sum(rows_read), 0) AS rows_read,
               coalesce(sum(rows_accepted), 0) AS rows_accepted, coalesce(sum(rows_quarantined), 0) AS rows_quarantined
        FROM (SELECT *, row_number() OVER (PARTITION BY source, batch_date ORDER BY finished_at DESC) AS rn
              FROM {LOG_TABLE} WHERE status = '{SUCCEEDED}') WHERE rn = 1
        """
    ).collect()[0]
    return {k: int(row[k]) for k in ("files", "rows_read", "rows_accepted", "rows_quarantined")}
