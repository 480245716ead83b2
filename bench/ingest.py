"""Throughput of the simulator and of validated ingestion, for a 100k-row and a 1M-row day.

    python bench/ingest.py [--sizes 100000 1000000] [--keep DIR]

Prints, per size: simulator rows/s; ingestion rows/s excluding JVM start, with the time split
into read (parse), validation (Great Expectations + cross-batch id check) and Delta writes; and,
as a baseline measured in the same run, a plain Spark CSV read + Delta append of the same file
with no validation, so the cost of validation and lineage is visible. Runs in a throw-away data
directory. Numbers depend on the machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROWS_PER_CUSTOMER_DAY = 1.94  # mean of Poisson(U(0,4)) minus the times that fall outside the day


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="data directory to use and keep (default: a temp dir)")
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    os.environ["PIPELINE_DATA_DIR"] = str(data_dir)
    from jobs.config import get_settings
    from jobs.data.ingest import ingest
    from jobs.data.simulate import SimulationConfig, simulate
    from jobs.platform.spark import get_spark

    settings = get_settings()
    t = time.perf_counter()
    spark = get_spark(settings, app_name="bench-ingest")
    jvm_start = time.perf_counter() - t
    print(f"JVM + SparkSession start: {jvm_start:.1f} s")
    results = []
    for i, size in enumerate(args.sizes):
        day = date(2026, 3, 1 + i)
        cfg = SimulationConfig(
            start_date=day,
            days=1,
            n_customers=int(size / ROWS_PER_CUSTOMER_DAY),
            n_terminals=10_000,
            seed=100 + i,
            bad_rows_rate=0.001,
        )
        t = time.perf_counter()
        summary = simulate(cfg, settings.storage.landing_dir)
        sim_s = time.perf_counter() - t
        rows_written = summary["transactions"]  # clean rows; bad rows are extra lines
        res = ingest(day, "transactions", settings=settings, run_id=f"bench_{size}")
        ingest_s = res.seconds - res.timings.get("spark_session", 0.0)
        write_s = sum(v for k, v in res.timings.items() if k.startswith("write"))
        # baseline: the same file through Spark's CSV reader straight into a Delta table
        path = settings.storage.landing_file("transactions", day)
        t = time.perf_counter()
        raw = spark.read.option("header", True).option("inferSchema", False).csv(str(path))
        raw.write.format("delta").mode("overwrite").save(str(data_dir / "baseline" / str(size)))
        base_s = time.perf_counter() - t
        row = {
            "size": size,
            "rows_read": res.rows_read,
            "quarantined": res.rows_quarantined,
            "simulator_rows_per_s": round(rows_written / sim_s),
            "simulator_s": round(sim_s, 2),
            "ingest_s_excl_jvm": round(ingest_s, 2),
            "ingest_rows_per_s": round(res.rows_read / ingest_s),
            "read_s": res.timings["read"],
            "check_log_s": res.timings.get("check_log", 0.0),
            "validate_s": res.timings["validate"],
            "delta_write_s": round(write_s, 2),
            "baseline_csv_to_delta_s": round(base_s, 2),
            "baseline_rows_per_s": round(res.rows_read / base_s),
            "ratio_vs_baseline": round(ingest_s / base_s, 2),
        }
        results.append(row)
        print(
            f"{size:>9,} rows | simulator {row['simulator_rows_per_s']:>10,} rows/s ({sim_s:.1f} s) | ingestion "
            f"{row['ingest_rows_per_s']:>8,} rows/s ({ingest_s:.1f} s: read {row['read_s']:.1f}, log check {row['check_log_s']:.1f}, validate "
            f"{row['validate_s']:.1f}, delta write {write_s:.1f}) | baseline csv->delta {row['baseline_rows_per_s']:>8,} rows/s"
            f" ({base_s:.1f} s) | ingestion/baseline {row['ratio_vs_baseline']:.2f}x",
            flush=True,
        )
    print(json.dumps({"jvm_start_s": round(jvm_start, 2), "results": results}))
    if args.keep is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
