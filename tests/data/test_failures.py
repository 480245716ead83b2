"""Failures proven safe: crashes between commits, any bytes in a landing file.

* A real ingestion process is killed (SIGKILL) at each point between its commits, then run again:
  the tables end as after one clean run (same rows, no duplicates, the log consistent,
  read = accepted + quarantined). Only the killed run needs a process of its own: the set-up, the
  clean reference and the re-run ingest in this one (a fresh process costs 4 to 5 s of imports
  before it reads a byte; what the re-run finds is on disk either way). The feature job's crashes
  are in ``test_feature_crash.py``.
* Hypothesis feeds ingestion random files; it never crashes without a clear logged reason, and every
  file it accepts reconciles.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs.config import load_settings
from jobs.data.ingest import IngestionError, IngestionResult, ingest, ingest_days
from jobs.data.simulate import SimulationConfig, simulate

from killable import run_job
from tables import INGESTION_TABLES, digest, rows

# Columns that differ between two runs by design: when and by which run a row was written, where the
# landing directory is, and the Delta version numbers the log records.
RUN_SPECIFIC = (
    "ingested_at",
    "run_id",
    "started_at",
    "finished_at",
    "source_file",
    "bronze_version",
    "quarantine_version",
)
CRASH_START, CRASH_DAYS = date(2025, 4, 1), 3


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    """Three simulated days with malformed rows (the files every crash test ingests)."""
    root = tmp_path_factory.mktemp("crash-landing")
    cfg = SimulationConfig(
        start_date=CRASH_START, days=CRASH_DAYS, n_customers=150, n_terminals=300, seed=5, bad_rows_rate=0.05
    )
    simulate(cfg, root / "landing")
    return root / "landing"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _ingest_range(data: Path, source: str, failpoint: str) -> subprocess.CompletedProcess:
    """The crash days ingested by ``python -m jobs.data.ingest`` in a process of its own, armed to be killed."""
    last = CRASH_START + timedelta(days=CRASH_DAYS - 1)
    args = ["--date", str(CRASH_START), "--through", str(last), "--source", source]
    return run_job(["-m", "jobs.data.ingest", *args], data, failpoint)


def _ingest_range_here(data: Path, source: str) -> list[IngestionResult]:
    """The crash days ingested in this process, into the data dir ``data``."""
    days = [CRASH_START + timedelta(days=i) for i in range(CRASH_DAYS)]
    return ingest_days(days, source, settings=load_settings({"PIPELINE_DATA_DIR": str(data)}))


@pytest.fixture(scope="module")
def before_and_clean(landing, tmp_path_factory) -> tuple[Path, Path]:
    """The data dir just before the transaction files are ingested (fraud reports done), and the
    same after one clean, uninterrupted ingestion of them."""
    before = tmp_path_factory.mktemp("crash") / "before"
    shutil.copytree(landing, before / "landing")
    assert {r.status for r in _ingest_range_here(before, "fraud_reports")} == {"succeeded"}
    clean = _copy(before, before.parent / "clean")
    assert {r.status for r in _ingest_range_here(clean, "transactions")} == {"succeeded"}
    return before, clean


@pytest.mark.parametrize("point", ["ingest:after_bronze", "ingest:after_quarantine", "ingest:before_log"])
def test_ingestion_killed_between_commits_converges_on_rerun(point, before_and_clean, tmp_path):
    before, clean = before_and_clean
    crashed = _copy(before, tmp_path / "crashed")
    killed = _ingest_range(crashed, "transactions", failpoint=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    s = load_settings({"PIPELINE_DATA_DIR": str(crashed)})
    # what the crash left: no log entry for the transaction files, so nothing claims they were ingested
    assert not rows(s, "ops.ingestion_log", source="transactions")
    again = _ingest_range_here(crashed, "transactions")
    assert [r.status for r in again] == ["succeeded"] * CRASH_DAYS

    c = load_settings({"PIPELINE_DATA_DIR": str(clean)})
    for table in INGESTION_TABLES:  # the same rows as one clean run
        assert digest(s, table, RUN_SPECIFIC) == digest(c, table, RUN_SPECIFIC), table
    bronze = rows(s, "bronze.transactions")
    assert len({r["transaction_id"] for r in bronze}) == len(bronze)  # no duplicates
    log = rows(s, "ops.ingestion_log", source="transactions")
    assert len(log) == CRASH_DAYS and all(e["rows_read"] == e["rows_accepted"] + e["rows_quarantined"] for e in log)
    assert sum(e["rows_accepted"] for e in log) == len(bronze)
    assert sum(e["rows_quarantined"] for e in log) == len(rows(s, "quarantine.transactions"))


# --- any bytes in: nothing lost, no unexplained crash -------------------------------------------------

HEADER = "transaction_id,tx_datetime,customer_id,terminal_id,tx_amount"
_fuzz_day = iter(date(2040, 1, 1) + timedelta(days=i) for i in range(100_000))


def _good_line(i: int, day: date) -> str:
    return f"F{day:%Y%m%d}{i},{day} 1{i % 10}:00:00,c{i % 7},t{i % 5},{i % 300}.5"


@st.composite
def landing_files(draw) -> tuple[bytes, str]:
    """A landing file as an upstream system might get it wrong: bytes, encodings, quoting, delimiters..."""
    kind = draw(st.sampled_from(["bytes", "csv", "csv", "csv", "jsonl", "empty", "header_only"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400)), ".csv"
    if kind == "empty":
        return b"", ".csv"
    if kind == "header_only":
        return (HEADER + draw(st.sampled_from(["", "\n", "\r\n"]))).encode(), ".csv"
    if kind == "jsonl":
        lines = draw(
            st.lists(
                st.one_of(
                    st.dictionaries(
                        st.sampled_from(
                            ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "x"]
                        ),
                        st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12)),
                    ).map(json.dumps),
                    st.text(max_size=30),
                ),
                max_size=8,
            )
        )
        return "\n".join(lines).encode(), ".jsonl"
    day = date(2040, 1, 1)  # the timestamps inside are mostly on another day than the file's: a rule to break
    separator = draw(st.sampled_from([",", ",", ",", ";", "\t", "|"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [HEADER.replace(",", separator) if draw(st.booleans()) else HEADER]
    for i in range(draw(st.integers(0, 12))):
        line = _good_line(i, day)
        mutation = draw(
            st.sampled_from(["none", "none", "quote", "unclosed_quote", "field", "blank", "huge", "text", "sep"])
        )
        if mutation == "quote":
            line = line.replace(",", ',"', 1) + '"'
        elif mutation == "unclosed_quote":
            line = '"' + line
        elif mutation == "field":
            line += "," + draw(st.text(max_size=5))
        elif mutation == "blank":
            line = draw(st.sampled_from(["", " ", "\t"]))
        elif mutation == "huge":
            line = line + "x" * draw(st.sampled_from([1_000, 100_000]))
        elif mutation == "text":
            line = draw(st.text(max_size=40))
        elif mutation == "sep":
            line = line.replace(",", separator)
        lines.append(line)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return newline.join(lines).encode(encoding, errors="replace"), ".csv"


@hsettings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(landing_file=landing_files())
def test_any_bytes_in_nothing_lost_and_no_unexplained_crash(settings, landing_file):
    content, suffix = landing_file
    day = next(_fuzz_day)
    path = settings.storage.landing_dir / "transactions" / f"{day}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    try:
        result = ingest(day, "transactions", settings=settings, run_id="fuzz")
    except IngestionError as exc:  # refused as a whole: said why, in the exception and in the log
        (entry,) = rows(settings, "ops.ingestion_log", day, source="transactions")
        assert entry["status"] == "failed" and entry["error"] and str(exc)
        assert not rows(settings, "bronze.transactions", day)
        return
    finally:
        path.unlink()
    assert result.status == "succeeded"
    assert result.rows_read == result.rows_accepted + result.rows_quarantined
    assert len(rows(settings, "bronze.transactions", day)) == result.rows_accepted
    quarantined = rows(settings, "quarantine.transactions", day)
    assert len(quarantined) == result.rows_quarantined and all(q["reasons"] for q in quarantined)
