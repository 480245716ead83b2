"""One large day on top of a history, through ingestion, dbt and features, timed stage by stage.

    python bench/pipeline.py [--day-rows 1000000] [--history-days 30] [--history-customers 5000]

In a throw-away data directory and Airflow DB:

1. History (not timed): ``--history-days`` days of the standard population ingested, dbt built.
2. The large day (``--day-rows`` transactions from a population sized for it; its first customer and
   terminal ids overlap the history's, so their windows reach into it), timed per stage:
   ingestion, dbt, features, feature validation.
3. dbt twice on identical work (``fct_transactions`` restored to the same Delta version between):
   a plain ``dbt build`` and the ``dbt`` task group of ``data_pipeline`` as Airflow runs it (cosmos
   watcher producer + one sensor per model and per model's tests, via ``dag.test``). Ratio printed.
4. The Spark feature job against a vectorised pandas/numpy reference on the same rows (ratio), and
   whether the two agree exactly.

Numbers depend on the machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROWS_PER_CUSTOMER_DAY = 1.94  # see bench/ingest.py
DAY_US = 86_400_000_000


def reference_features_numpy(frame, day: date | None, delay: int):
    """Every feature of the rows of ``day`` (all rows if None) with sorted-key searches (no Spark).

    ``frame`` needs transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, batch_date and
    report_known_at (NaT = no report known).
    """
    import numpy as np
    import pandas as pd

    from jobs.features.registry import (
        CUSTOMER_WINDOWS,
        KNOWN_FRAUD_HORIZON_DAYS,
        KNOWN_FRAUD_WINDOWS,
        NO_KNOWN_FRAUD_DAYS,
        TERMINAL_WINDOWS,
        lookback_days,
    )

    ts = frame["tx_datetime"].astype("datetime64[us]").astype("int64").to_numpy()
    t0 = ts.min()
    rel = ts - t0
    # Keys are entity * big + relative time: big must exceed the span plus the longest look-back,
    # or a window of one entity would reach into the previous entity's keys.
    big = np.int64(rel.max() + (lookback_days(delay) + 2) * DAY_US)
    cents = np.round(frame["tx_amount"].to_numpy() * 100).astype(np.int64)
    target = np.ones(len(frame), dtype=bool) if day is None else (frame["batch_date"] == day).to_numpy()
    out = pd.DataFrame({"transaction_id": frame["transaction_id"].to_numpy()})
    when = frame["tx_datetime"].dt
    out["tx_amount"] = frame["tx_amount"].to_numpy()
    out["tx_during_weekend"] = (when.dayofweek >= 5).astype("int32").to_numpy()
    out["tx_during_night"] = (when.hour <= 6).astype("int32").to_numpy()

    cust = pd.factorize(frame["customer_id"])[0].astype(np.int64)
    order = np.lexsort((rel, cust))
    keys = cust[order] * big + rel[order]
    csum = np.concatenate([[0], np.cumsum(cents[order])])
    k = cust * big + rel
    right = np.searchsorted(keys, k, side="right")
    for n in CUSTOMER_WINDOWS:
        left = np.searchsorted(keys, k - n * DAY_US, side="right")
        nb = right - left
        out[f"customer_nb_tx_{n}d"] = nb.astype("int32")
        out[f"customer_avg_amount_{n}d"] = (csum[right] - csum[left]) / nb / 100.0
    avg30 = out["customer_avg_amount_30d"].to_numpy()
    out["customer_amount_ratio_30d"] = np.where(
        avg30 != 0, out["tx_amount"].to_numpy() / np.where(avg30 != 0, avg30, 1), 1.0
    )

    term = pd.factorize(frame["terminal_id"])[0].astype(np.int64)
    order = np.lexsort((rel, term))
    keys = term[order] * big + rel[order]
    k = term * big + rel
    has = frame["report_known_at"].notna().to_numpy()
    known_rel = frame["report_known_at"].astype("datetime64[us]").astype("int64").to_numpy()[has] - t0
    f_term, f_rel = term[has], rel[has]

    def known_between(lo_days: int, hi_days: int):
        """Per row: frauds of its terminal with time in (t - lo_days, t - hi_days], known at t.

        A fraud f counts for the rows of its terminal with max(known, f + hi) <= t < f + lo.
        """
        start = np.searchsorted(keys, f_term * big + np.maximum(known_rel, f_rel + hi_days * DAY_US), side="left")
        end = np.searchsorted(keys, f_term * big + f_rel + lo_days * DAY_US, side="left")
        diff = np.zeros(len(keys) + 1, dtype=np.int64)
        ok = start < end
        np.add.at(diff, start[ok], 1)
        np.add.at(diff, end[ok], -1)
        counted = np.empty(len(keys), dtype=np.int64)
        counted[order] = np.cumsum(diff)[:-1]
        return counted

    def terminal_count(lo_days: int, hi_days: int):
        """Per row: transactions of its terminal with time in (t - lo_days, t - hi_days]."""
        hi = np.searchsorted(keys, k - hi_days * DAY_US, side="right")
        return hi - np.searchsorted(keys, k - lo_days * DAY_US, side="right")

    for n in TERMINAL_WINDOWS:
        nb = terminal_count(n + delay, delay)
        known = known_between(n + delay, delay)
        out[f"terminal_nb_tx_{n}d"] = nb.astype("int32")
        out[f"terminal_risk_{n}d"] = np.where(nb > 0, known / np.where(nb > 0, nb, 1), 0.0)
    for n in KNOWN_FRAUD_WINDOWS:
        known = known_between(n, 0)
        out[f"terminal_known_fraud_{n}d"] = known.astype("int32")
        out[f"terminal_known_fraud_share_{n}d"] = known / terminal_count(n, 0)

    # Days since the latest known fraud: frauds in order of (terminal, known time) with the running
    # max of their transaction time; a row looks up the last fraud of its terminal known at t.
    f_order = np.lexsort((known_rel, f_term))
    f_keys = f_term[f_order] * big + known_rel[f_order]
    latest = pd.Series(f_rel[f_order]).groupby(f_term[f_order]).cummax().to_numpy()
    at = np.searchsorted(f_keys, k, side="right") - 1
    found = at >= 0
    found[found] = f_term[f_order][at[found]] == term[found]
    age = rel - np.where(found, latest[np.clip(at, 0, None)], 0)
    recent = found & (age < KNOWN_FRAUD_HORIZON_DAYS * DAY_US)
    out["terminal_days_since_known_fraud"] = np.where(recent, age / DAY_US, NO_KNOWN_FRAUD_DAYS)
    return out[target].reset_index(drop=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--day-rows", type=int, default=1_000_000)
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--history-customers", type=int, default=5_000)
    parser.add_argument("--history-terminals", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="data directory to use and keep (default: a temp dir)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    os.environ.update(
        {
            "PIPELINE_DATA_DIR": str(work / "data"),
            "PIPELINE_START_DATE": "2025-01-01",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(work / "airflow-logs"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True)

    from jobs.config import get_settings
    from jobs.data.ingest import ingest
    from jobs.data.reference import ingest_references
    from jobs.data.simulate import SimulationConfig, simulate
    from jobs.features.build import build_features
    from jobs.features.validate import validate_feature_partition
    from jobs.platform.dbt_runner import ensure_manifest, run_dbt
    from jobs.platform.spark import get_spark

    settings = get_settings()
    timings: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        t = time.perf_counter()
        result = fn(*a, **kw)
        timings[name] = time.perf_counter() - t
        print(f"  {name}: {timings[name]:.1f} s", flush=True)
        return result

    print(f"data dir: {work}")
    timed("JVM + SparkSession start", get_spark, settings, "bench-pipeline")
    spark = get_spark(settings)
    ensure_manifest(settings)

    start = date(2026, 4, 1)
    day = start + timedelta(days=args.history_days)
    print(f"history: {args.history_days} days x {args.history_customers} customers (not timed)")
    hist = SimulationConfig(
        start_date=start,
        days=args.history_days,
        n_customers=args.history_customers,
        n_terminals=args.history_terminals,
        seed=21,
    )
    t = time.perf_counter()
    simulate(hist, settings.storage.landing_dir)
    for i in range(args.history_days):
        d = start + timedelta(days=i)
        ingest(d, "transactions", settings=settings, run_id="bench_history")
        ingest(d, "fraud_reports", settings=settings, run_id="bench_history")
    ingest_references(day, settings=settings)
    run_dbt(["run", "--quiet"], settings, vars={"as_of": str(day - timedelta(days=1))})
    history_rows = spark.table("marts.fct_transactions").count()
    print(f"  history ready: {history_rows:,} transactions in {time.perf_counter() - t:.0f} s")

    big = SimulationConfig(
        start_date=day,
        days=1,
        n_customers=int(args.day_rows / ROWS_PER_CUSTOMER_DAY),
        n_terminals=max(args.history_terminals, args.day_rows // 100),
        seed=22,
    )
    simulate(big, settings.storage.landing_dir)
    print(f"the day {day}:")
    res = timed("ingest transactions", ingest, day, "transactions", settings=settings, run_id="bench_day")
    timed("ingest fraud reports", ingest, day, "fraud_reports", settings=settings, run_id="bench_day")
    print(f"  ({res.rows_accepted:,} transactions accepted)")

    version = spark.sql("DESCRIBE HISTORY marts.fct_transactions LIMIT 1").collect()[0]["version"]
    timed("dbt build (plain)", run_dbt, ["build", "--quiet"], settings, vars={"as_of": str(day)})
    spark.sql(f"RESTORE TABLE marts.fct_transactions TO VERSION AS OF {version}")

    from airflow.dag_processing.dagbag import BundleDagBag

    dags_dir = settings.dbt.project_dir.parent / "dags"
    dag = BundleDagBag(dag_folder=str(dags_dir / "data_pipeline.py"), bundle_path=dags_dir).dags["data_pipeline"]
    dbt_only = dag.partial_subset(
        task_ids=[t.task_id for t in dag.tasks if t.task_id.startswith("dbt.")],
        include_upstream=False,
        include_downstream=False,
    )
    run = timed(
        "dbt as rendered in Airflow (dag.test of the dbt task group)",
        dbt_only.test,
        logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC),
    )
    n_tasks = len(run.get_task_instances())
    assert run.state == "success", f"dbt task group: {run.state}"

    summary = timed("features", build_features, day, settings=settings)
    timed("feature validation", validate_feature_partition, day, settings=settings)

    from pyspark.sql import functions as F

    from jobs.features.registry import lookback_days

    lo = datetime.combine(day, datetime.min.time()) - timedelta(days=lookback_days(settings.features.label_delay_days))
    t = time.perf_counter()
    frame = (
        spark.table("marts.fct_transactions")
        .where(
            (F.col("tx_datetime") > F.lit(lo))
            & (F.col("tx_datetime") < F.lit(datetime.combine(day + timedelta(days=1), datetime.min.time())))
        )
        .select(
            "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "report_known_at", "batch_date"
        )
        .toPandas()
    )
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    reference = reference_features_numpy(frame, day, settings.features.label_delay_days)
    ref_s = time.perf_counter() - t
    stored = spark.table("features.transaction_features").where(F.col("batch_date") == F.lit(day)).toPandas()
    merged = stored.merge(reference, on="transaction_id", suffixes=("", "_ref"))
    from jobs.features.registry import FEATURE_NAMES

    mismatches = {f: int((merged[f] != merged[f + "_ref"]).sum()) for f in FEATURE_NAMES}
    mismatches = {f: n for f, n in mismatches.items() if n}

    pipeline = (
        timings["ingest transactions"]
        + timings["ingest fraud reports"]
        + timings["dbt as rendered in Airflow (dag.test of the dbt task group)"]
        + timings["features"]
        + timings["feature validation"]
    )
    dbt_ratio = timings["dbt as rendered in Airflow (dag.test of the dbt task group)"] / timings["dbt build (plain)"]
    print()
    print(
        f"day of {res.rows_accepted:,} transactions on a {history_rows:,}-row history ({args.history_days} days), {len(merged):,} feature rows"
    )
    print(f"daily pipeline (ingest + dbt in Airflow + features + validation): {pipeline:.0f} s")
    print(f"dbt: Airflow-rendered ({n_tasks} tasks) / plain dbt build = {dbt_ratio:.2f}x (target <= 1.3x)")
    print(
        f"features: Spark job {summary['seconds']:.1f} s (incl. writes and online state) vs numpy reference {ref_s:.1f} s "
        f"(+ {load_s:.1f} s to load the rows into pandas): ratio {summary['seconds'] / ref_s:.1f}x"
    )
    print(
        f"Spark features equal the reference exactly: {'yes' if not mismatches and len(merged) == res.rows_accepted else mismatches}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
