"""What each feature costs in the feature job: Spark time, measured on a real day, per feature.

The feature job computes every feature in one Spark plan, so its log has one duration. To see what
each feature adds, :func:`measure` caches a day's input once, then times (writing to Spark's ``noop``
sink, so storage is not counted) the whole feature set, and each feature alone (the key and that
column: Catalyst prunes the windows and joins the column does not need). A feature's
``attributed_seconds`` splits the whole set's time in proportion to the alone times; ``seconds_alone``
is what keeping only it would cost. Rows go to ``ops.feature_costs`` (one per feature, day and
feature-set version; re-measuring a day replaces its rows).

``data_pipeline``'s ``measure_feature_costs`` task measures the day it just built unless a
measurement of the current feature set is younger than :data:`MAX_AGE_DAYS` (:func:`ensure_recent`);
each training's evaluation reads the latest (:func:`latest_costs`), and the report and the model card
show it next to each feature's benefit (:mod:`jobs.evaluation.benefit`).
``python -m jobs.features.cost --date D`` measures one day by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from jobs.config import Settings, get_settings
from jobs.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from jobs.platform import delta

log = logging.getLogger(__name__)

COSTS_TABLE = "ops.feature_costs"
MAX_AGE_DAYS = 7
SPEC = delta.TableSpec(
    COSTS_TABLE,
    pa.schema(
        [
            pa.field("day", pa.date32(), nullable=False),
            pa.field("feature_set_version", pa.string(), nullable=False),
            pa.field("feature", pa.string(), nullable=False),
            pa.field("seconds_alone", pa.float64(), nullable=False),
            pa.field("attributed_seconds", pa.float64(), nullable=False),
            pa.field("seconds_all_features", pa.float64(), nullable=False),
            pa.field("rows", pa.int64(), nullable=False),
            pa.field("measured_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    ),
)


def measure(day: date | None = None, settings: Settings | None = None, spark=None) -> dict:
    """Time the feature set and each feature alone on ``day``'s transactions (default: the last delivered
    day); store and return the costs."""
    from pyspark.sql import functions as F

    from jobs.features.build import SOURCE_TABLE, _history_for, compute_features
    from jobs.platform.spark import get_spark

    settings = settings or get_settings()
    spark = spark or get_spark(settings, app_name="feature-costs")
    day = day or spark.table(SOURCE_TABLE).agg(F.max("batch_date")).collect()[0][0]
    delay = settings.features.label_delay_days
    history, n = _history_for(spark, day, day, delay)
    if history is None:
        raise ValueError(f"no transactions with batch_date {day}: nothing to measure the feature job on")
    history = history.cache()
    history.count()
    try:
        features = compute_features(history, delay)  # planned once: each timing runs a selection of it

        def timed(columns: list[str]) -> float:
            t0 = time.perf_counter()
            features.select(*columns).write.format("noop").mode("overwrite").save()
            return time.perf_counter() - t0

        timed(["transaction_id", *FEATURE_NAMES])  # warm-up: plans, code generation, the cache
        together = timed(["transaction_id", *FEATURE_NAMES])
        alone = {name: timed(["transaction_id", name]) for name in FEATURE_NAMES}
    finally:
        history.unpersist()
    total_alone = sum(alone.values()) or 1.0
    now = datetime.now(UTC)
    rows = [
        {
            "day": day,
            "feature_set_version": FEATURE_SET_VERSION,
            "feature": name,
            "seconds_alone": seconds,
            "attributed_seconds": together * seconds / total_alone,
            "seconds_all_features": together,
            "rows": n,
            "measured_at": now,
        }
        for name, seconds in alone.items()
    ]
    delta.overwrite_where(
        settings,
        SPEC,
        pa.Table.from_pylist(rows, schema=SPEC.schema),
        f"day = '{day}' AND feature_set_version = '{FEATURE_SET_VERSION}'",
    )
    log.info(
        "feature costs on %s (%d rows): all features %.2f s, each alone %.2f s in sum", day, n, together, total_alone
    )
    return latest_costs(settings)


def latest_costs(settings: Settings | None = None) -> dict | None:
    """The newest measurement of the current feature set, per feature (None if never measured)."""
    settings = settings or get_settings()
    if not delta.exists(settings, COSTS_TABLE):
        return None
    table = delta.read(settings, SPEC, filters=[("feature_set_version", "=", FEATURE_SET_VERSION)]).to_pandas()
    if table.empty:
        return None
    newest = table[table["measured_at"] == table["measured_at"].max()]
    first = newest.iloc[0]
    return {
        "day": str(first["day"]),
        "measured_at": first["measured_at"].isoformat(),
        "rows": int(first["rows"]),
        "seconds_all_features": float(first["seconds_all_features"]),
        "features": {
            r.feature: {"seconds_alone": float(r.seconds_alone), "attributed_seconds": float(r.attributed_seconds)}
            for r in newest.itertuples()
        },
    }


def ensure_recent(day: date | None = None, settings: Settings | None = None, max_age_days: int = MAX_AGE_DAYS) -> dict:
    """The latest costs, measured on ``day`` (default: the last delivered day) first if none of the
    current feature set is younger than ``max_age_days``."""
    settings = settings or get_settings()
    latest = latest_costs(settings)
    if latest and datetime.fromisoformat(latest["measured_at"]) > datetime.now(UTC) - timedelta(days=max_age_days):
        log.info("feature costs measured %s on %s: recent enough", latest["measured_at"], latest["day"])
        return latest
    return measure(day, settings)


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m jobs.features.cost", description="Measure each feature's time in the feature job on one day."
    )
    parser.add_argument("--date", type=date.fromisoformat, help="a batch_date with transactions; default: the last")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        out = measure(args.date)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
