"""The landing contract's rules for one record, for callers that receive records one by one.

The suites in ``jobs/data/suites/`` are the contract of each landing source; ingestion runs them
with Great Expectations over whole files (:mod:`jobs.data.expectations`). The scoring API validates
single transactions with pydantic instead, from the same rules read out of the same suite here, so
an id the pipeline would quarantine is also refused at the API, and a change to the suite changes
both. Kept free of pandas and Great Expectations (the service imports it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SUITES_DIR = Path(__file__).resolve().parent / "suites"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # tx_datetime / reported_at in every landing file, UTC


@cache
def suite_definition(name: str) -> dict:
    """The suite ``name`` as written in ``suites/<name>.json``."""
    return json.loads((SUITES_DIR / f"{name}.json").read_text())


@dataclass(frozen=True)
class RecordRules:
    """What one record of a source must satisfy: required fields, id patterns, value ranges."""

    required: tuple[str, ...]  # the schema rules (expect_column_to_exist), in the file's order
    patterns: dict[str, str]  # column -> regex, for the id columns (expect_column_values_to_match_regex)
    ranges: dict[str, tuple[float | str | None, float | str | None]]  # column -> (min, max); "$name" = parameter


def record_rules(source: str) -> RecordRules:
    """The rules of ``source``'s suite that apply to one record on its own.

    Batch-level rules (uniqueness within the file and across files, the file's day) need the file
    and are ingestion's alone. Range rules on derived ``<column>_value`` columns apply to ``<column>``.
    """
    required, patterns, ranges = [], {}, {}
    for e in suite_definition(source)["expectations"]:
        kind, kw = e["type"], e["kwargs"]
        if kind == "expect_column_to_exist":
            required.append(kw["column"])
        elif kind == "expect_column_values_to_match_regex" and kw["column"].endswith("_id"):
            patterns[kw["column"]] = kw["regex"]
        elif kind == "expect_column_values_to_be_between" and kw["column"].endswith("_value"):
            bounds = []
            for key in ("min_value", "max_value"):
                v = kw.get(key)
                bounds.append(f"${v['$PARAMETER']}" if isinstance(v, dict) else v)
            ranges[kw["column"].removesuffix("_value")] = tuple(bounds)
    return RecordRules(tuple(required), patterns, ranges)
