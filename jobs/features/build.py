"""Point-in-time features for one day's transactions, and the online state serving needs.

``python -m jobs.features.build --date YYYY-MM-DD`` (or :func:`build_features`) reads
``marts.fct_transactions``, computes every feature of :mod:`jobs.features.registry` for the
transactions delivered that day (``batch_date``) from the history before them, and replaces that
day's partition of ``features.transaction_features`` (idempotent per date; a backfill of an old date
rewrites that date only). It also writes the day's online state (``features.customer_state``,
``features.terminal_state``): the recent events per entity, from which
:func:`jobs.features.online.online_features` computes the same values for a new transaction.

Windows are ranges over the transaction time in microseconds, so "(t - N days, t]" is exact; every
report-based feature counts a fraud only if its report was known at t: ``report_known_at <= t``, the
end of the day of the report's file (the registry's rule).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, date, datetime, timedelta

from jobs.config import Settings, get_settings
from jobs.features.registry import (
    CUSTOMER_WINDOWS,
    DAY_US,
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    FEATURES,
    KNOWN_FRAUD_HORIZON_DAYS,
    KNOWN_FRAUD_WINDOWS,
    NIGHT_LAST_HOUR,
    NO_KNOWN_FRAUD_DAYS,
    TERMINAL_WINDOWS,
    lookback_days,
)
from jobs.platform.faults import failpoint
from jobs.platform.lakehouse import replace_where
from jobs.platform.logs import setup_logging

log = logging.getLogger(__name__)

SOURCE_TABLE = "marts.fct_transactions"
FEATURES_TABLE = "features.transaction_features"
CUSTOMER_STATE_TABLE = "features.customer_state"
TERMINAL_STATE_TABLE = "features.terminal_state"
OUTPUT_TABLES = (FEATURES_TABLE, CUSTOMER_STATE_TABLE, TERMINAL_STATE_TABLE)  # what a run writes, in that order
STATE_RETENTION_DAYS = 7
KEY_COLUMNS = ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "batch_date")
SPARK_TYPES = {"int": "int", "double": "double"}


def compute_features(history, delay_days: int):
    """Features of the rows of ``history`` flagged ``is_target``, from all rows of ``history``.

    ``history`` columns: transaction_id (unique), tx_datetime, customer_id, terminal_id, tx_amount,
    report_known_at (null = no report), batch_date, is_target. It must hold every transaction in the
    windows of the targets (the job loads (first target - lookback, last target], see
    :func:`jobs.features.registry.lookback_days`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Columns are added in a few selects, not withColumn by withColumn (each call analyses the plan again).
    h = history.select(
        "*", F.unix_micros("tx_datetime").alias("_ts"), F.round(F.col("tx_amount") * 100).cast("long").alias("_cents")
    )
    by_customer = Window.partitionBy("customer_id").orderBy("_ts")
    by_terminal = Window.partitionBy("terminal_id").orderBy("_ts")
    cols = {
        "tx_amount": F.col("tx_amount"),
        "tx_during_weekend": F.when(F.dayofweek("tx_datetime").isin(1, 7), 1).otherwise(0),
        "tx_during_night": F.when(F.hour("tx_datetime") <= NIGHT_LAST_HOUR, 1).otherwise(0),
    }
    for n in CUSTOMER_WINDOWS:
        w = by_customer.rangeBetween(-(n * DAY_US - 1), 0)
        cols[f"customer_nb_tx_{n}d"] = F.count(F.lit(1)).over(w)
        cols[f"customer_avg_amount_{n}d"] = (F.sum("_cents").over(w) / F.count(F.lit(1)).over(w)) / F.lit(100.0)
    for n in TERMINAL_WINDOWS:
        w = by_terminal.rangeBetween(-((n + delay_days) * DAY_US - 1), -delay_days * DAY_US)
        cols[f"terminal_nb_tx_{n}d"] = F.count(F.lit(1)).over(w)
    for n in KNOWN_FRAUD_WINDOWS:
        cols[f"_terminal_all_{n}d"] = F.count(F.lit(1)).over(by_terminal.rangeBetween(-(n * DAY_US - 1), 0))
    windowed = h.select("*", *[c.alias(name) for name, c in cols.items() if name != "tx_amount"]).where("is_target")
    avg30 = F.col("customer_avg_amount_30d")
    derived = {"customer_amount_ratio_30d": F.when(avg30 != 0, F.col("tx_amount") / avg30).otherwise(F.lit(1.0))}

    # Frauds known at t among the terminal's recent transactions: a range condition on two times,
    # so a join against the (few) reported transactions rather than a window.
    widest = lookback_days(delay_days)
    frauds = h.where(F.col("report_known_at").isNotNull()).select(
        F.col("terminal_id").alias("_f_terminal"),
        F.col("_ts").alias("_f_ts"),
        F.unix_micros("report_known_at").alias("_f_known"),
    )
    targets = windowed.select("transaction_id", "terminal_id", "_ts")
    joined = targets.join(
        frauds,
        (targets.terminal_id == frauds._f_terminal)
        & (frauds._f_ts > targets._ts - widest * DAY_US)
        & (frauds._f_ts <= targets._ts)
        & (frauds._f_known <= targets._ts),
        "left",
    )
    age = F.col("_ts") - F.col("_f_ts")  # null when the terminal has no known fraud in reach

    def known_within(lo_days: int, hi_days: int):
        """Known frauds with time in (t - lo_days, t - hi_days]."""
        inside = (age < lo_days * DAY_US) & (age >= hi_days * DAY_US)
        return F.sum(F.when(inside, 1).otherwise(0))

    known = joined.groupBy("transaction_id").agg(
        *[known_within(n + delay_days, delay_days).alias(f"_risk_{n}d") for n in TERMINAL_WINDOWS],
        *[known_within(n, 0).alias(f"_recent_{n}d") for n in KNOWN_FRAUD_WINDOWS],
        F.min(F.when(age < KNOWN_FRAUD_HORIZON_DAYS * DAY_US, age)).alias("_last_age"),
    )
    out = windowed.join(known, "transaction_id", "left")
    for n in TERMINAL_WINDOWS:
        nb, k = F.col(f"terminal_nb_tx_{n}d"), F.coalesce(F.col(f"_risk_{n}d"), F.lit(0))
        derived[f"terminal_risk_{n}d"] = F.when(nb > 0, k / nb).otherwise(F.lit(0.0))
    for n in KNOWN_FRAUD_WINDOWS:
        k = F.coalesce(F.col(f"_recent_{n}d"), F.lit(0))
        derived[f"terminal_known_fraud_{n}d"] = k
        derived[f"terminal_known_fraud_share_{n}d"] = k / F.col(f"_terminal_all_{n}d")
    derived["terminal_days_since_known_fraud"] = F.coalesce(
        F.col("_last_age") / F.lit(float(DAY_US)), F.lit(NO_KNOWN_FRAUD_DAYS)
    )
    typed = [derived.get(f.name, F.col(f.name)).cast(SPARK_TYPES[f.dtype]).alias(f.name) for f in FEATURES]
    return out.select(*KEY_COLUMNS, *typed)


def _ensure_tables(spark) -> None:
    feature_cols = ", ".join(f"{f.name} {SPARK_TYPES[f.dtype].upper()} NOT NULL" for f in FEATURES)
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {FEATURES_TABLE} (
            transaction_id STRING NOT NULL, tx_datetime TIMESTAMP NOT NULL, customer_id STRING NOT NULL,
            terminal_id STRING NOT NULL, batch_date DATE NOT NULL, {feature_cols},
            feature_set_version STRING NOT NULL, computed_at TIMESTAMP NOT NULL
        ) USING DELTA PARTITIONED BY (batch_date)
        COMMENT 'Point-in-time features per transaction (jobs.features); one partition per delivery day'"""
    )
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {CUSTOMER_STATE_TABLE} (
            customer_id STRING NOT NULL,
            events ARRAY<STRUCT<tx_datetime: TIMESTAMP, tx_amount: DOUBLE>> NOT NULL,
            state_date DATE NOT NULL, feature_set_version STRING NOT NULL
        ) USING DELTA PARTITIONED BY (state_date)
        COMMENT 'Per customer: transactions of the last 30 days as of the end of state_date (serving)'"""
    )
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {TERMINAL_STATE_TABLE} (
            terminal_id STRING NOT NULL,
            events ARRAY<STRUCT<tx_datetime: TIMESTAMP, report_known_at: TIMESTAMP>> NOT NULL,
            state_date DATE NOT NULL, feature_set_version STRING NOT NULL
        ) USING DELTA PARTITIONED BY (state_date)
        COMMENT 'Per terminal: transactions of the feature lookback, with when each report became known (null if not by the end of state_date) (serving)'"""
    )


def _history_for(spark, first: date, last: date, delay_days: int):
    """The rows delivered ``first``..``last`` flagged as targets, plus every transaction their windows reach."""
    from pyspark.sql import functions as F

    fct = spark.table(SOURCE_TABLE)
    in_range = F.col("batch_date").between(F.lit(first), F.lit(last))
    bounds = (
        fct.where(in_range)
        .agg(F.min("tx_datetime").alias("lo"), F.max("tx_datetime").alias("hi"), F.count(F.lit(1)).alias("n"))
        .collect()[0]
    )
    if not bounds["n"]:
        return None, 0
    lo = bounds["lo"] - timedelta(days=lookback_days(delay_days))
    history = fct.where((F.col("tx_datetime") > F.lit(lo)) & (F.col("tx_datetime") <= F.lit(bounds["hi"]))).select(
        "transaction_id",
        "tx_datetime",
        "customer_id",
        "terminal_id",
        "tx_amount",
        "report_known_at",
        "batch_date",
        in_range.alias("is_target"),
    )
    return history, bounds["n"]


def _write_state(spark, day: date, delay_days: int) -> dict[str, int]:
    from pyspark.sql import functions as F

    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    fct = spark.table(SOURCE_TABLE).where(F.col("tx_datetime") < F.lit(end))
    customer = (
        fct.where(F.col("tx_datetime") >= F.lit(end - timedelta(days=max(CUSTOMER_WINDOWS))))
        .groupBy("customer_id")
        .agg(F.sort_array(F.collect_list(F.struct("tx_datetime", "tx_amount"))).alias("events"))
    )
    terminal = (
        fct.where(F.col("tx_datetime") >= F.lit(end - timedelta(days=lookback_days(delay_days))))
        .select(
            "terminal_id",
            "tx_datetime",
            F.when(F.col("report_known_at") <= F.lit(end), F.col("report_known_at")).alias("report_known_at"),
        )
        .groupBy("terminal_id")
        .agg(F.sort_array(F.collect_list(F.struct("tx_datetime", "report_known_at"))).alias("events"))
    )
    counts = {}
    for table, frame in ((CUSTOMER_STATE_TABLE, customer), (TERMINAL_STATE_TABLE, terminal)):
        frame = frame.withColumn("state_date", F.lit(day)).withColumn("feature_set_version", F.lit(FEATURE_SET_VERSION))
        frame = frame.select(*spark.table(table).columns)
        replace_where(spark, frame, table, f"state_date = '{day}'")
        failpoint(f"features:after_{table.split('.')[1]}")
        written = spark.table(table).agg(  # one query: the newest state, and this day's rows (pruning keeps them)
            F.max("state_date").alias("latest"), F.count(F.when(F.col("state_date") == F.lit(day), 1)).alias("rows")
        )
        latest, counts[table] = written.first()
        if day >= latest:  # prune when writing the newest state; a backfill of an old day prunes nothing
            spark.sql(f"DELETE FROM {table} WHERE state_date < DATE'{day - timedelta(days=STATE_RETENTION_DAYS)}'")
    return counts


def build_features(
    day: date | str, settings: Settings | None = None, write_state: bool = True, through: date | str | None = None
) -> dict:
    """Compute and store the features of ``day``'s transactions; return a summary (fit for XCom).

    With ``through``, every batch date from ``day`` to ``through`` is computed in one Spark job and
    their partitions replaced in one commit (a backfill); the state is then written for ``through``.
    """
    from pyspark.sql import functions as F

    from jobs.platform.lakehouse import table_version
    from jobs.platform.spark import get_spark

    first = date.fromisoformat(day) if isinstance(day, str) else day
    last = first if through is None else (date.fromisoformat(through) if isinstance(through, str) else through)
    if last < first:
        raise ValueError(f"--through {last} is before --date {first}")
    settings = settings or get_settings()
    t0 = time.perf_counter()
    spark = get_spark(settings, app_name="features")
    _ensure_tables(spark)
    delay = settings.features.label_delay_days
    history, n_targets = _history_for(spark, first, last, delay)
    span = str(first) if first == last else f"{first}..{last}"
    if history is None:
        raise ValueError(f"no transactions with batch_date {span} in {SOURCE_TABLE}: run ingestion and dbt first")
    features = compute_features(history, delay).withColumns(
        {"feature_set_version": F.lit(FEATURE_SET_VERSION), "computed_at": F.lit(datetime.now(UTC))}
    )
    columns = spark.table(FEATURES_TABLE).columns
    features = features.select(*columns).cache()
    try:
        written = features.count()
        if written != n_targets:
            raise RuntimeError(f"features for {span}: computed {written} rows for {n_targets} transactions")
        replace_where(
            spark, features, FEATURES_TABLE, f"batch_date >= '{first}' AND batch_date <= '{last}'"
        )  # BETWEEN trips Spark 4.2's analyzer here
        failpoint("features:after_transaction_features")
    finally:
        features.unpersist()
    summary = {
        "batch_date": span,
        "rows": written,
        "feature_set_version": FEATURE_SET_VERSION,
        "features": len(FEATURE_NAMES),
        "table_version": table_version(spark, FEATURES_TABLE),
    }
    if write_state:
        summary["state_rows"] = _write_state(spark, last, delay)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("features: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.features.build", description="Build one day's (or a range's) features."
    )
    parser.add_argument("--date", type=date.fromisoformat, required=True, help="batch date, YYYY-MM-DD")
    parser.add_argument(
        "--through", type=date.fromisoformat, help="last batch date of a backfill range (one Spark job)"
    )
    parser.add_argument("--no-state", action="store_true", help="skip the online state tables")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        summary = build_features(args.date, write_state=not args.no_state, through=args.through)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
