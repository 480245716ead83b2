"""Seed or rebuild a range of days outside Airflow: one pass per stage.

    python -m jobs.data.backfill --from 2025-11-20 --to 2025-12-31

The same jobs as ``data_pipeline``, each run once for the whole range instead of once per day:
ingestion of every day's transactions in one pass (one validation, one commit per table, exact
per-file accounting in ``ops.ingestion_log``), the same for the fraud reports, the reference
snapshots, one ``dbt build`` with labels as of the last day, and the features of the range in one
Spark job. What you run to give a fresh lakehouse months of history before training, or to rebuild
after a feature change. Idempotent like the jobs it calls (files already ingested with the same
checksum are skipped). Progress (stage, day n of N, rows/s, time left) goes to the log. Feature
validation stays per day in the DAG; run ``python -m jobs.features.validate --date D`` for a
backfilled day you want checked.
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


def backfill(first: date, last: date, settings: Settings | None = None, run_id: str | None = None) -> dict:
    """Ingest, transform and featurize ``first``..``last``; return counts and seconds per stage."""
    from jobs.data.ingest import ingest_days
    from jobs.data.reference import ingest_references
    from jobs.features.build import build_features
    from jobs.platform.dbt_runner import run_dbt

    settings = settings or get_settings()
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    run_id = run_id or f"backfill__{first}_{last}"
    t0 = time.perf_counter()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    accepted = quarantined = 0
    seconds: dict[str, float] = {}
    for source in ("transactions", "fraud_reports"):
        t = time.perf_counter()
        results = ingest_days(days, source, settings=settings, run_id=run_id)
        fresh = [
            r for r in results if r.status == "succeeded"
        ]  # files skipped as already ingested are not counted again
        accepted += sum(r.rows_accepted for r in fresh)
        quarantined += sum(r.rows_quarantined for r in fresh)
        seconds[f"ingest_{source}"] = round(time.perf_counter() - t, 1)
        log.info(
            "backfill %s..%s: %s ingested (%d of %d files new) in %.1f s",
            first,
            last,
            source,
            len(fresh),
            len(days),
            seconds[f"ingest_{source}"],
        )
    ingest_references(last, run_id=run_id, settings=settings)
    seconds["ingest"] = round(time.perf_counter() - t0, 1)
    t = time.perf_counter()
    log.info("backfill %s..%s: dbt build (labels as of %s)", first, last, last)
    run_dbt(["build", "--exclude", "resource_type:unit_test", "--quiet"], settings, vars={"as_of": str(last)})
    seconds["dbt"] = round(time.perf_counter() - t, 1)
    log.info(
        "backfill %s..%s: dbt build done in %.1f s; features of %d days in one Spark job",
        first,
        last,
        seconds["dbt"],
        len(days),
    )
    features = build_features(first, settings=settings, through=last)
    seconds["features"] = features["seconds"]
    seconds["total"] = round(time.perf_counter() - t0, 1)
    return {
        "days": len(days),
        "rows_accepted": accepted,
        "rows_quarantined": quarantined,
        "feature_rows": features["rows"],
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.data.backfill", description="Ingest, transform and featurize a range of days."
    )
    parser.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    parser.add_argument("--to", dest="last", type=date.fromisoformat, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    for noisy in ("great_expectations", "py4j", "jobs.data.ingest"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # keep the progress lines readable
    try:
        summary = backfill(args.first, args.last)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # RuntimeError: IngestionError, DbtFailed
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
