"""Seed or rebuild a range of days outside Airflow, in one Spark session.

    python -m jobs.data.backfill --from 2025-11-20 --to 2025-12-31

The same jobs as ``data_pipeline`` (ingestion of each day's files, the reference snapshots, one
``dbt build`` with labels as of the last day, the features of the whole range in one Spark job),
without a scheduler round-trip per day: what you run to give a fresh lakehouse months of history
before training, or to rebuild after a feature change. Idempotent like the jobs it calls (a file
already ingested with the same checksum is skipped). Feature validation stays per day in the DAG;
run ``python -m jobs.features.validate --date D`` for a backfilled day you want checked.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import date, timedelta

from jobs.config import Settings, get_settings
from jobs.platform.logs import setup_logging

log = logging.getLogger(__name__)


def backfill(first: date, last: date, settings: Settings | None = None) -> dict:
    from jobs.data.ingest import ingest
    from jobs.data.reference import ingest_references
    from jobs.features.build import build_features
    from jobs.platform.dbt_runner import run_dbt

    settings = settings or get_settings()
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    t0 = time.perf_counter()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    accepted = quarantined = 0
    for day in days:
        for source in ("transactions", "fraud_reports"):
            result = ingest(day, source, settings=settings, run_id=f"backfill__{first}_{last}")
            if result.status == "succeeded":  # files skipped as already ingested are not counted again
                accepted += result.rows_accepted
                quarantined += result.rows_quarantined
    ingest_references(last, run_id=f"backfill__{first}_{last}", settings=settings)
    t_ingest = time.perf_counter() - t0
    run_dbt(["build", "--exclude", "resource_type:unit_test", "--quiet"], settings, vars={"as_of": str(last)})
    t_dbt = time.perf_counter() - t0 - t_ingest
    features = build_features(first, settings=settings, through=last)
    return {
        "days": len(days),
        "rows_accepted": accepted,
        "rows_quarantined": quarantined,
        "feature_rows": features["rows"],
        "seconds": {
            "ingest": round(t_ingest, 1),
            "dbt": round(t_dbt, 1),
            "features": features["seconds"],
            "total": round(time.perf_counter() - t0, 1),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.data.backfill", description="Ingest, transform and featurize a range of days."
    )
    parser.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    parser.add_argument("--to", dest="last", type=date.fromisoformat, required=True)
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    try:
        summary = backfill(args.first, args.last)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # RuntimeError: IngestionError, DbtFailed
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
