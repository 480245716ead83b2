"""Delta tables of the lakehouse: their schemas, creation, atomic partition writes, versions and counts.

Tables live in the Spark catalog (``bronze``, ``quarantine``, ``ops`` schemas) with their data under
``PIPELINE_DATA_DIR/lakehouse/<schema>/<table>``. They are created on first use, so a fresh
lakehouse needs no set-up step. ``python -m jobs.platform.lakehouse --table`` prints every table's
row count and Delta version, and whether ingestion reconciles.
"""

from __future__ import annotations

import json
import sys

from jobs.platform import opslog

LINEAGE_COLUMNS = """
    source_file STRING NOT NULL,
    file_checksum STRING NOT NULL,
    batch_date DATE NOT NULL,
    line_number INT NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    run_id STRING NOT NULL
"""

TABLES: dict[str, str] = {
    "bronze.transactions": f"""
        transaction_id STRING NOT NULL,
        tx_datetime TIMESTAMP NOT NULL,
        customer_id STRING NOT NULL,
        terminal_id STRING NOT NULL,
        tx_amount DOUBLE NOT NULL,
        extra_fields MAP<STRING, STRING>,
        {LINEAGE_COLUMNS}
    """,
    "bronze.fraud_reports": f"""
        transaction_id STRING NOT NULL,
        reported_at TIMESTAMP NOT NULL,
        extra_fields MAP<STRING, STRING>,
        {LINEAGE_COLUMNS}
    """,
    "quarantine.transactions": f"""
        raw_line STRING,
        raw_values MAP<STRING, STRING>,
        reasons ARRAY<STRING> NOT NULL,
        {LINEAGE_COLUMNS}
    """,
    "quarantine.fraud_reports": f"""
        raw_line STRING,
        raw_values MAP<STRING, STRING>,
        reasons ARRAY<STRING> NOT NULL,
        {LINEAGE_COLUMNS}
    """,
    opslog.LOG_TABLE: opslog.LOG_DDL,
}

PARTITIONS = {name: "batch_date" for name in TABLES if not name.startswith("ops.")}

# What `python -m jobs.lakehouse` reports: the tables above plus those written by reference
# ingestion, dbt and the feature job.
REPORT_TABLES = [
    *TABLES,
    "bronze.customers",
    "bronze.terminals",
    "marts.fct_transactions",
    "marts.dim_customers",
    "marts.dim_terminals",
    "features.transaction_features",
    "features.customer_state",
    "features.terminal_state",
]


def ensure_table(spark, name: str) -> None:
    """Create ``name`` as a Delta table if it does not exist yet."""
    partition = f"PARTITIONED BY ({PARTITIONS[name]})" if name in PARTITIONS else ""
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} ({TABLES[name]}) USING DELTA {partition}")


def replace_where(spark, frame, table: str, predicate: str) -> None:
    """Overwrite the rows of ``table`` matching ``predicate`` with ``frame`` in one Delta commit.

    Written by path, so the metastore entry never changes and Hive is not asked to alter the table.
    """
    location = spark.sql(f"DESCRIBE DETAIL {table}").collect()[0]["location"]
    frame.write.format("delta").mode("overwrite").option("replaceWhere", predicate).save(location)


def table_version(spark, name: str) -> int | None:
    """Latest Delta version of ``name`` (None if the table does not exist)."""
    if not spark.catalog.tableExists(name):
        return None
    return int(spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").collect()[0]["version"])


def table_counts(spark, names: list[str] | None = None) -> dict[str, int | None]:
    """Row count of each table (None where it does not exist)."""
    out: dict[str, int | None] = {}
    for name in names or list(TABLES):
        out[name] = spark.table(name).count() if spark.catalog.tableExists(name) else None
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.platform.lakehouse [--table]``: each table's row count and Delta version (JSON last line)."""
    import argparse

    from jobs.platform.logs import setup_logging
    from jobs.platform.spark import get_spark

    parser = argparse.ArgumentParser(prog="python -m jobs.platform.lakehouse", description=main.__doc__)
    parser.add_argument("--table", action="store_true", help="also print a human-readable table")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    spark = get_spark(app_name="lakehouse-report")
    counts = table_counts(spark, REPORT_TABLES)
    report = {name: {"rows": rows, "version": table_version(spark, name)} for name, rows in counts.items()}
    totals = opslog.reconciliation(spark)
    if args.table:
        print(f"{'table':<28}{'rows':>10}{'version':>9}")
        for name, info in report.items():
            rows = "-" if info["rows"] is None else info["rows"]
            version = "-" if info["version"] is None else info["version"]
            print(f"{name:<28}{rows:>10}{version:>9}")
        ok = totals["rows_read"] == totals["rows_accepted"] + totals["rows_quarantined"]
        print(
            f"files ingested: {totals['files']}; rows read {totals['rows_read']} = accepted {totals['rows_accepted']}"
            f" + quarantined {totals['rows_quarantined']}: {'reconciled' if ok else 'NOT RECONCILED'}"
        )
    print(json.dumps({"tables": report, "reconciliation": totals}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
