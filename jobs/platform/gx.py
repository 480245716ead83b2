"""Great Expectations: one ephemeral context per process, a pandas batch per named frame.

Both users go through :func:`run_suite`: the landing rules of :mod:`jobs.data.expectations` (row
level, with the failing rows' indexes) and the feature checks of :mod:`jobs.features.validate`
(partition level). The context and the batch definitions are built once per process, so validating
many files costs the validation itself, not the set-up. Validation runs on pandas: for the same rows
Great Expectations on Spark is several times slower.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any


class ExpectationError(RuntimeError):
    """An expectation could not run at all (a bad column, a bad parameter): a bug, not bad data."""


@lru_cache(maxsize=1)
def context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # Great Expectations fingerprints every pandas batch by hashing all of its values (twice per
    # validation), which costs more than the validation itself on a large file. The fingerprint is
    # batch metadata nothing here reads; a threshold of 0 skips it. Every row is still validated.
    pandas_execution_engine.HASH_THRESHOLD = 0
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


@cache
def _batch_definition(name: str):
    data_source = context().data_sources.add_pandas(f"frames_{name}")
    return data_source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("batch")


def suite(name: str, expectations: list[dict], meta: dict | None = None):
    """An expectation suite from plain configurations (``type``, ``kwargs``, ``meta``)."""
    import great_expectations as gx

    return gx.ExpectationSuite(name=name, expectations=expectations, meta=meta)


def run_suite(
    frame, expectation_suite, parameters: dict[str, Any] | None = None, result_format: dict | str = "SUMMARY"
):
    """Validate a pandas ``frame`` against ``expectation_suite``; return ``[(rule, result), ...]``.

    ``rule`` is the expectation's ``meta.rule`` (its name in quarantine reasons and summaries), or its type.
    An expectation that raised instead of evaluating is an :class:`ExpectationError`.
    """
    batch = _batch_definition(expectation_suite.name).get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(expectation_suite, expectation_parameters=parameters or {}, result_format=result_format)
    out = []
    for res in result.results:
        rule = res.expectation_config.meta.get("rule", res.expectation_config.type)
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise ExpectationError(f"expectation {rule} could not run: {res.exception_info.get('exception_message')}")
        out.append((rule, res))
    return out
