"""The lakehouse's Delta tables as Spark sees them: catalog registration, atomic partition writes, versions.

Every table lives under ``PIPELINE_DATA_DIR/lakehouse/<schema>/<table>``. Ingestion creates and writes
the ``bronze``, ``quarantine`` and ``ops`` tables without a JVM (:mod:`jobs.platform.delta`);
:func:`register_path_tables` adds them to the Spark catalog by location the first time a Spark job
runs (dbt reads them as sources). dbt and the feature job create their own tables through Spark.
``python -m jobs.platform.lakehouse --table`` prints every table's row count and Delta version, and
whether ingestion reconciles, without starting a JVM.
"""

from __future__ import annotations

import json
import logging
import sys

from jobs.config import Settings, get_settings
from jobs.platform import delta, opslog

log = logging.getLogger(__name__)

PATH_SCHEMAS = ("bronze", "quarantine", "ops")  # the schemas whose tables are written by delta-rs

# What the report shows: ingestion's tables, then those written by dbt and the feature job.
REPORT_TABLES = [
    "bronze.transactions",
    "bronze.fraud_reports",
    "quarantine.transactions",
    "quarantine.fraud_reports",
    opslog.LOG_TABLE,
    "bronze.customers",
    "bronze.terminals",
    "marts.fct_transactions",
    "marts.dim_customers",
    "marts.dim_terminals",
    "features.transaction_features",
    "features.customer_state",
    "features.terminal_state",
]

_registered: set[str] = set()


def register_path_tables(spark, settings: Settings | None = None) -> list[str]:
    """Register in the Spark catalog, by location, the Delta tables delta-rs created; return those added."""
    settings = settings or get_settings()
    added = []
    for schema in PATH_SCHEMAS:
        root = settings.storage.lakehouse_dir / schema
        if not root.is_dir():
            continue
        new = [p for p in sorted(root.iterdir()) if (p / "_delta_log").is_dir() and str(p) not in _registered]
        if not new:
            continue
        # One listing per schema: tableExists() per table loads each Delta table's log (~0.5 s each).
        known = {row["tableName"] for row in spark.sql(f"SHOW TABLES IN {schema}").collect()}
        for location in new:
            name = f"{schema}.{location.name}"
            if location.name not in known:
                spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{location}'")
                added.append(name)
            _registered.add(str(location))
    if added:
        log.info("registered in the Spark catalog: %s", ", ".join(added))
    return added


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


def table_report(settings: Settings, names: list[str] | None = None) -> dict[str, dict]:
    """Row count and Delta version of each table, read from the Delta logs (no JVM); None where missing."""
    from deltalake import DeltaTable

    out = {}
    for name in names or REPORT_TABLES:
        if not delta.exists(settings, name):
            out[name] = {"rows": None, "version": None}
            continue
        table = DeltaTable(str(delta.path(settings, name)))
        out[name] = {"rows": int(table.count()), "version": table.version()}
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.platform.lakehouse [--table]``: each table's row count and Delta version (JSON last line)."""
    import argparse

    from jobs.platform.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m jobs.platform.lakehouse", description=main.__doc__)
    parser.add_argument("--table", action="store_true", help="also print a human-readable table")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    settings = get_settings()
    report = table_report(settings)
    totals = opslog.reconciliation(settings)
    if args.table:
        print(f"{'table':<31}{'rows':>10}{'version':>9}")
        for name, info in report.items():
            rows = "-" if info["rows"] is None else info["rows"]
            version = "-" if info["version"] is None else info["version"]
            print(f"{name:<31}{rows:>10}{version:>9}")
        ok = totals["rows_read"] == totals["rows_accepted"] + totals["rows_quarantined"]
        print(
            f"files ingested: {totals['files']}; rows read {totals['rows_read']} = accepted {totals['rows_accepted']}"
            f" + quarantined {totals['rows_quarantined']}: {'reconciled' if ok else 'NOT RECONCILED'}"
        )
    print(json.dumps({"tables": report, "reconciliation": totals}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
