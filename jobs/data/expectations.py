"""The landing contract as Great Expectations suites (``suites/<source>.json``) and a row validator.

The suites are the contract of each landing source: :func:`validate_rows` runs one on a pandas frame
and returns, for every rule (an expectation's ``meta.rule``), the rows that broke it, so ingestion can
quarantine each bad row with the rule or rules it broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from jobs.data.contract import suite_definition
from jobs.platform import gx

ROW_INDEX = "_row"


@dataclass
class ValidationOutcome:
    """Which rows broke which rule, plus a summary fit for the ingestion log."""

    failures: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return not any(len(v) for v in self.failures.values())


def load_suite(name: str):
    definition = suite_definition(name)
    return gx.suite(definition["name"], definition["expectations"], definition.get("meta"))


def suite_columns(name: str) -> list[str]:
    """Every column the suite's rules read (raw and derived), in the order they first appear."""
    return list(
        dict.fromkeys(e["kwargs"]["column"] for e in suite_definition(name)["expectations"] if "column" in e["kwargs"])
    )


def required_columns(name: str) -> list[str]:
    """Columns the suite says must exist in the file (its ``expect_column_to_exist`` rules)."""
    return [
        e["kwargs"]["column"] for e in suite_definition(name)["expectations"] if e["type"] == "expect_column_to_exist"
    ]


PARALLEL_MIN_ROWS = 200_000  # below this, forking costs more than it saves
_CHUNKED: pd.DataFrame | None = None  # the frame forked workers validate slices of (shared copy-on-write)


def validate_rows(
    frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any], workers: int | None = None
) -> ValidationOutcome:
    """Validate ``frame`` (which must carry a ``_row`` column) against the suite ``suite_name``.

    A large frame is cut into ``workers`` slices validated side by side in forked processes (one per
    core by default; every row still goes through the whole suite). Not in a process that runs a JVM:
    forking one with a live Spark gateway is not safe, so such a process validates in one piece.
    """
    if frame.empty:
        return ValidationOutcome(summary={"suite": suite_name, "rows": 0, "rules": {}})
    workers = _default_workers(len(frame)) if workers is None else workers
    if workers > 1 and len(frame) >= 2 * workers:
        return _validate_in_parallel(frame, suite_name, parameters, workers)
    return _validate_one(frame, suite_name, parameters)


def _default_workers(rows: int) -> int:
    import os
    import sys

    if rows < PARALLEL_MIN_ROWS:
        return 1
    if "pyspark" in sys.modules:
        from pyspark import SparkContext

        if SparkContext._active_spark_context is not None:
            return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _validate_chunk(bounds: tuple[int, int, str, dict]) -> ValidationOutcome:
    lo, hi, suite_name, parameters = bounds
    return _validate_one(_CHUNKED.iloc[lo:hi], suite_name, parameters)


def _validate_in_parallel(frame: pd.DataFrame, suite_name: str, parameters: dict, workers: int) -> ValidationOutcome:
    import multiprocessing

    global _CHUNKED
    gx.context()  # build the context and the batch definition once, before forking: the workers inherit them
    _validate_one(frame.iloc[:1], suite_name, parameters)
    edges = np.linspace(0, len(frame), workers + 1).astype(int)
    _CHUNKED = frame
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(
                _validate_chunk, [(edges[i], edges[i + 1], suite_name, parameters) for i in range(workers)]
            )
    finally:
        _CHUNKED = None
    outcome = ValidationOutcome(summary={"suite": suite_name, "rows": len(frame), "rules": {}, "workers": workers})
    for rule in parts[0].failures:
        outcome.failures[rule] = np.concatenate([p.failures[rule] for p in parts])
        outcome.summary["rules"][rule] = int(len(outcome.failures[rule]))
    return outcome


def _validate_one(frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any]) -> ValidationOutcome:
    # With pandas' Arrow-backed strings (the parser's), the suite's pattern rules run as vectorised
    # Arrow regular expressions instead of Python's, row by row: about 5x faster on a large file.
    with pd.option_context("future.infer_string", True):
        return _run(frame, suite_name, parameters)


def _run(frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any]) -> ValidationOutcome:
    results = gx.run_suite(
        frame,
        load_suite(suite_name),
        parameters,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_INDEX]},
    )
    outcome = ValidationOutcome(summary={"suite": suite_name, "rows": len(frame), "rules": {}})
    for rule, res in results:
        rows = np.array([r[ROW_INDEX] for r in (res.result.get("unexpected_index_list") or [])], dtype=np.int64)
        if not res.success and "unexpected_index_list" not in res.result:
            raise RuntimeError(f"table-level rule {rule} failed: {res.result}")
        outcome.failures[rule] = rows
        outcome.summary["rules"][rule] = int(len(rows))
    return outcome
