"""Failures proven safe: the feature job killed (SIGKILL) between its table writes, then run again, ends
as after one clean run (same rows, no duplicates).

Its own file, so ``pytest -n 2`` can run it (a minute and a half: three JVM processes) in one worker while
the ingestion crash tests of ``test_failures.py`` run in the other.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from jobs.config import load_settings
from jobs.features.build import OUTPUT_TABLES as FEATURE_TABLES

from killable import run_job
from tables import digest, rows

FEATURE_JOB = Path(__file__).with_name("feature_job.py")


def _feature_job(mode: str, data: Path, failpoint: str | None = None) -> subprocess.CompletedProcess:
    return run_job(
        [str(FEATURE_JOB), *mode.split()], data, failpoint, timeout=900, PIPELINE_SPARK_SHUFFLE_PARTITIONS="1"
    )


def test_feature_job_killed_between_its_writes_converges_on_rerun(tmp_path):
    from feature_job import LAST

    lake = tmp_path / "lake"
    # the set-up (and the clean reference) in the first process, which is then killed after its first write
    killed = _feature_job("setup features", lake, "features:after_transaction_features")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (lake / "reference.json").exists(), killed.stderr[-3000:]  # the set-up itself finished
    s = load_settings({"PIPELINE_DATA_DIR": str(lake)})
    has_day = lambda table, column: bool(
        rows(s, table, **{column: LAST}) if column != "batch_date" else rows(s, table, LAST)
    )
    assert has_day("features.transaction_features", "batch_date") and not has_day(
        "features.customer_state", "state_date"
    )
    killed = _feature_job("features", lake, "features:after_customer_state")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert has_day("features.customer_state", "state_date") and not has_day("features.terminal_state", "state_date")
    assert (p := _feature_job("features", lake)).returncode == 0, p.stderr[-3000:]

    reference = json.loads((lake / "reference.json").read_text())  # the last day once, never interrupted
    for table in FEATURE_TABLES:
        assert list(digest(s, table, ("computed_at",))) == reference[table], table
    features = rows(s, "features.transaction_features", LAST)
    assert len(features) == len({f["transaction_id"] for f in features}) > 0  # one row per transaction, no duplicates
