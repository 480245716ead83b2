"""Run by ``test_feature_crash.py`` in a process of its own (a lakehouse and metastore of its own).

python tests/data/feature_job.py setup features  # a small marts.fct_transactions; features of all days
                                                 # but the last; then the last day's (may be killed)
python tests/data/feature_job.py features        # the features of the last day (PIPELINE_FAILPOINT may kill it)

``setup`` also computes the last day once, cleanly, records the digest of each feature table in
``<data dir>/reference.json``, then restores the tables to the version before that day (Delta time
travel, with delta-rs: a commit of milliseconds, where Spark's RESTORE costs seconds a table in a cold
JVM): the clean reference costs no second process. ``PIPELINE_FAILPOINT`` is armed only for the
``features`` step, so the first crash shares the set-up's JVM (each process costs 17 to 35 s here, most of it starting and warming its JVM).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from jobs.features.build import OUTPUT_TABLES as FEATURE_TABLES
from jobs.platform.faults import ENV as FAILPOINT_ENV

FIRST, DAYS = date(2025, 2, 1), 10
LAST = FIRST + timedelta(days=DAYS - 1)


def setup(spark) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for d in range(DAYS):
        day = FIRST + timedelta(days=d)
        for i in range(60):
            ts = datetime(day.year, day.month, day.day) + timedelta(seconds=int(rng.integers(0, 86_400)))
            fraud = rng.random() < 0.1
            reported = ts + timedelta(hours=int(rng.integers(1, 48))) if fraud else None
            known = datetime.combine(reported.date() + timedelta(days=1), datetime.min.time()) if fraud else None
            rows.append(
                (
                    f"x{d:02d}{i:03d}",
                    ts,
                    f"c{rng.integers(0, 15)}",
                    f"t{rng.integers(0, 8)}",
                    float(round(rng.uniform(5, 300), 2)),
                    reported,
                    known,
                    day,
                )
            )
    schema = (
        "transaction_id string, tx_datetime timestamp, customer_id string, terminal_id string, tx_amount double, "
        "reported_at timestamp, report_known_at timestamp, batch_date date"
    )
    spark.sql("CREATE SCHEMA IF NOT EXISTS marts")
    spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite").saveAsTable("marts.fct_transactions")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for tables.py
    from jobs.config import get_settings
    from jobs.features.build import build_features
    from jobs.platform import delta
    from jobs.platform.spark import get_spark

    from tables import digest, restore

    armed = os.environ.pop(FAILPOINT_ENV, None)  # not during the set-up
    settings = get_settings()
    spark = get_spark(settings, app_name="feature-crash-test")
    if "setup" in sys.argv[1:]:
        setup(spark)
        build_features(FIRST, settings=settings, through=LAST - timedelta(days=1))
        before = {t: delta.version(settings, t) for t in FEATURE_TABLES}
        build_features(LAST, settings=settings)  # the clean run the crashed ones must converge to
        reference = {t: digest(settings, t, ("computed_at",)) for t in FEATURE_TABLES}
        (settings.storage.data_dir / "reference.json").write_text(json.dumps(reference))
        restore(settings, before)
    if "features" in sys.argv[1:]:
        if armed:
            os.environ[FAILPOINT_ENV] = armed
        print(json.dumps(build_features(LAST, settings=settings), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
