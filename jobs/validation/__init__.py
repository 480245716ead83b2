"""Great Expectations suites (kept as JSON next to this file) and a row-level validator.

The suites are the contract of each landing source: :func:`validate_rows` runs one on a pandas
frame and returns, for every rule (an expectation's ``meta.rule``), the rows that broke it, so
ingestion can quarantine each bad row with the rule or rules it broke. Validation runs on pandas:
for the same rows Great Expectations on Spark is several times slower.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SUITES_DIR = Path(__file__).resolve().parent / "suites"
ROW_INDEX = "_row"

log = logging.getLogger(__name__)


@dataclass
class ValidationOutcome:
    """Which rows broke which rule, plus a summary fit for the ingestion log."""

    failures: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return not any(len(v) for v in self.failures.values())


def suite_definition(name: str) -> dict:
    return json.loads((SUITES_DIR / f"{name}.json").read_text())


@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@lru_cache(maxsize=None)
def _batch_definition(source: str):
    context = _context()
    data_source = context.data_sources.add_pandas(f"landing_{source}")
    return data_source.add_dataframe_asset(source).add_batch_definition_whole_dataframe("batch")


def load_suite(name: str):
    import great_expectations as gx

    definition = suite_definition(name)
    return gx.ExpectationSuite(name=definition["name"], expectations=definition["expectations"], meta=definition.get("meta"))


def required_columns(name: str) -> list[str]:
    """Columns the suite says must exist in the file (its ``expect_column_to_exist`` rules)."""
    return [e["kwargs"]["column"] for e in suite_definition(name)["expectations"] if e["type"] == "expect_column_to_exist"]


def validate_rows(frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any]) -> ValidationOutcome:
    """Validate ``frame`` (which must carry a ``_row`` column) against the suite ``suite_name``."""
    if frame.empty:
        return ValidationOutcome(summary={"suite": suite_name, "rows": 0, "rules": {}})
    suite = load_suite(suite_name)
    batch = _batch_definition(suite_name).get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite,
        expectation_parameters=parameters,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_INDEX]},
    )
    outcome = ValidationOutcome(summary={"suite": suite_name, "rows": len(frame), "rules": {}})
    for res in result.results:
        rule = res.expectation_config.meta.get("rule", res.expectation_config.type)
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {rule} could not run: {res.exception_info.get('exception_message')}")
        rows = np.array([r[ROW_INDEX] for r in (res.result.get("unexpected_index_list") or [])], dtype=np.int64)
        if not res.success and "unexpected_index_list" not in res.result:
            raise RuntimeError(f"table-level rule {rule} failed: {res.result}")
        outcome.failures[rule] = rows
        outcome.summary["rules"][rule] = int(len(rows))
    return outcome
