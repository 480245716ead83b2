"""The landing contract as Great Expectations suites (``suites/<source>.json``) and a row validator.

The suites are the contract of each landing source: :func:`validate_rows` runs one on a pandas frame
and returns, for every rule (an expectation's ``meta.rule``), the rows that broke it, so ingestion can
quarantine each bad row with the rule or rules it broke.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.platform import gx

SUITES_DIR = Path(__file__).resolve().parent / "suites"
ROW_INDEX = "_row"


@dataclass
class ValidationOutcome:
    """Which rows broke which rule, plus a summary fit for the ingestion log."""

    failures: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return not any(len(v) for v in self.failures.values())


@cache
def suite_definition(name: str) -> dict:
    return json.loads((SUITES_DIR / f"{name}.json").read_text())


def load_suite(name: str):
    definition = suite_definition(name)
    return gx.suite(definition["name"], definition["expectations"], definition.get("meta"))


def required_columns(name: str) -> list[str]:
    """Columns the suite says must exist in the file (its ``expect_column_to_exist`` rules)."""
    return [
        e["kwargs"]["column"] for e in suite_definition(name)["expectations"] if e["type"] == "expect_column_to_exist"
    ]


def validate_rows(frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any]) -> ValidationOutcome:
    """Validate ``frame`` (which must carry a ``_row`` column) against the suite ``suite_name``."""
    if frame.empty:
        return ValidationOutcome(summary={"suite": suite_name, "rows": 0, "rules": {}})
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
