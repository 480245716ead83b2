"""Ingestion: the cost of a small daily file, the throughput of a large one, against plain Spark.

    python bench/ingest.py [--small-rows 1000] [--days 30] [--large-rows 1000000] [--keep DIR]

Prints, in one run, in a throw-away data directory:

1. the fixed start-up cost of an ingestion process (imports, the Great Expectations context), which
   an Airflow task pays once, and ``python -m jobs.data.ingest`` for one small file in a fresh process;
2. the per-file cost of a ~1,000-row file in a warm process, ingested day by day (as daily runs do)
   and as one backfill pass over ``--days`` files;
3. the throughput of a ~1M-row file, with the time split into read, parse, validation and writes,
   validated in one process and split over the cores;
4. the reference: plain Spark reading the same 1M-row CSV into a Delta table (no validation), JVM
   start excluded and reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROWS_PER_CUSTOMER_DAY = 1.94  # mean of Poisson(U(0,4)) minus the times that fall outside the day


def _days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-rows", type=int, default=1000, help="rows of a small daily file")
    parser.add_argument("--days", type=int, default=30, help="small files ingested day by day, then as one backfill")
    parser.add_argument("--large-rows", type=int, default=1_000_000, help="rows of the large file")
    parser.add_argument("--keep", type=Path, help="data directory to use and keep (default: a temp dir)")
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    os.environ["PIPELINE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    results: dict = {"cores": os.cpu_count()}

    t = time.perf_counter()
    from jobs.config import get_settings
    from jobs.data.expectations import load_suite
    from jobs.data.ingest import ingest, ingest_days
    from jobs.data.simulate import SimulationConfig, simulate
    from jobs.platform import gx
    from jobs.platform.logs import Progress, setup_logging

    gx.context()
    load_suite("transactions")
    results["startup_s"] = round(time.perf_counter() - t, 2)
    setup_logging("WARNING")
    import logging

    logging.getLogger("jobs.progress").setLevel(logging.INFO)
    settings = get_settings()
    print(
        f"start-up of an ingestion process (imports, Great Expectations context): {results['startup_s']:.1f} s",
        flush=True,
    )

    # 1. small files: simulate, then day by day in this (warm) process, then one backfill pass of a copy
    customers = max(10, int(args.small_rows / ROWS_PER_CUSTOMER_DAY))
    first = date(2026, 1, 1)
    daily, backfill = _days(first, args.days), _days(first + timedelta(days=args.days + 10), args.days)
    for span in (daily, backfill):
        simulate(
            SimulationConfig(
                start_date=span[0], days=len(span), n_customers=customers, n_terminals=2_000, seed=7, bad_rows_rate=0.01
            ),
            settings.storage.landing_dir,
        )
    t = time.perf_counter()
    cold = subprocess.run(
        [sys.executable, "-m", "jobs.data.ingest", "--date", str(daily[0])],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=600,
    )
    cold_wall = time.perf_counter() - t
    out = json.loads(cold.stdout.strip().splitlines()[-1]) if cold.returncode == 0 else {"error": cold.stderr[-500:]}
    results["cold_process_one_file"] = {
        "process_wall_s": round(cold_wall, 2),
        "in_job_s": out.get("seconds"),
        "rows": out.get("rows_read"),
    }
    progress = Progress("daily small files", len(daily) - 1, unit="day")
    per_file = []
    for day in daily[1:]:
        res = ingest(day, "transactions", settings=settings, run_id="bench_daily")
        per_file.append(res.seconds)
        progress.advance(rows=res.rows_read)
    results["daily_small_file_s"] = {
        "median": round(statistics.median(per_file), 3),
        "mean": round(statistics.mean(per_file), 3),
        "max": round(max(per_file), 3),
        "files": len(per_file),
    }
    t = time.perf_counter()
    res = ingest_days(backfill, "transactions", settings=settings, run_id="bench_backfill")
    wall = time.perf_counter() - t
    rows = sum(r.rows_read for r in res)
    results["backfill_pass"] = {
        "files": len(res),
        "rows": rows,
        "seconds": round(wall, 2),
        "per_file_s": round(wall / len(res), 3),
        "rows_per_s": round(rows / wall),
        "timings": res[-1].timings,
    }
    print(
        f"small file (~{args.small_rows:,} rows): daily median {results['daily_small_file_s']['median']:.3f} s per file "
        f"(mean {results['daily_small_file_s']['mean']:.3f}, max {results['daily_small_file_s']['max']:.3f}); "
        f"backfill pass {results['backfill_pass']['per_file_s']:.3f} s per file ({len(res)} files in {wall:.1f} s); "
        f"a fresh process for one file: {cold_wall:.1f} s wall, {out.get('seconds')} s in the job",
        flush=True,
    )

    # 2. one large file, validated in one process, then over every core
    big_days = [first + timedelta(days=2 * args.days + 30 + i) for i in range(2)]  # two fresh days, one per variant
    t = time.perf_counter()
    summary = simulate(
        SimulationConfig(
            start_date=big_days[0],
            days=2,
            n_customers=int(args.large_rows / ROWS_PER_CUSTOMER_DAY),
            n_terminals=10_000,
            seed=100,
            bad_rows_rate=0.001,
        ),
        settings.storage.landing_dir,
    )
    results["simulator_rows_per_s"] = round(summary["transactions"] / (time.perf_counter() - t))
    large = {}
    for big_day, (label, workers) in zip(big_days, (("one process", "1"), ("all cores", "0")), strict=True):
        os.environ["PIPELINE_VALIDATION_WORKERS"] = workers
        get_settings.cache_clear()
        res = ingest(big_day, "transactions", settings=get_settings(), run_id=f"bench_large_{workers}")
        large[label] = {
            "rows": res.rows_read,
            "seconds": res.seconds,
            "rows_per_s": round(res.rows_read / res.seconds),
            "timings": res.timings,
        }
        print(
            f"large file {res.rows_read:,} rows, validation in {label}: {res.seconds:.1f} s = "
            f"{res.rows_read / res.seconds:,.0f} rows/s  {json.dumps(res.timings)}",
            flush=True,
        )
    results["large_file"] = large

    # 3. the reference: plain Spark, CSV to Delta, no validation
    from jobs.platform.spark import get_spark

    t = time.perf_counter()
    spark = get_spark(settings, app_name="bench-ingest")
    results["jvm_start_s"] = round(time.perf_counter() - t, 1)
    path = settings.storage.landing_file("transactions", big_days[0])
    runs = []
    for i in range(2):  # the first run also warms the JIT; both are reported
        t = time.perf_counter()
        raw = spark.read.option("header", True).option("inferSchema", False).csv(str(path))
        raw.write.format("delta").mode("overwrite").save(str(data_dir / "baseline" / str(i)))
        runs.append(round(time.perf_counter() - t, 2))
    rows = large["one process"]["rows"]
    results["spark_csv_to_delta"] = {"seconds": runs, "rows_per_s": [round(rows / s) for s in runs]}
    best = max(v["rows_per_s"] for v in large.values())
    print(
        f"reference, plain Spark CSV -> Delta (JVM start {results['jvm_start_s']} s excluded): {runs} s = "
        f"{results['spark_csv_to_delta']['rows_per_s']} rows/s; validated ingestion at its best {best:,} rows/s = "
        f"{best / max(results['spark_csv_to_delta']['rows_per_s']):.2f}x Spark's",
        flush=True,
    )
    print(json.dumps(results, default=str))
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
