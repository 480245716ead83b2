"""Great Expectations checks on one day's partition of ``features.transaction_features``.

The suite is derived from the feature registry, so a new feature is checked as soon as it is
declared: every feature non-null, within its range (counts, shares, flags, amounts), one row per
transaction, the current feature-set version, and as many rows as the day's accepted transactions
in ``bronze.transactions``. A failing check raises :class:`FeatureValidationError` (the DAG task
fails and the Asset is not updated); the summary lists each expectation's outcome. Each outcome is
also recorded in ``ops.feature_validation`` (one row per day), which monitoring's data-quality check reads.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, date, datetime

import pyarrow as pa

from jobs.config import Settings, get_settings
from jobs.features.registry import FEATURE_SET_VERSION, FEATURES, KNOWN_FRAUD_HORIZON_DAYS, NO_KNOWN_FRAUD_DAYS
from jobs.platform import delta, gx
from jobs.platform.logs import setup_logging

log = logging.getLogger(__name__)


class FeatureValidationError(RuntimeError):
    """The day's features broke at least one expectation."""


VALIDATION = delta.TableSpec(  # each day's latest outcome, read by monitoring's data_quality
    "ops.feature_validation",
    pa.schema(
        [
            pa.field("batch_date", pa.date32(), nullable=False),
            pa.field("rows", pa.int64()),
            pa.field("expectations", pa.int64()),
            pa.field("failed", pa.int64()),
            pa.field("failed_rules", pa.string()),  # JSON: rule -> its outcome
            pa.field("validated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    ),
    ("batch_date",),
)


def record_validation(settings: Settings, day: date, summary: dict, failed: dict) -> None:
    """The day's latest outcome in ``ops.feature_validation`` (one row per day; monitoring reads it)."""
    row = {
        "batch_date": day,
        "rows": summary["rows"],
        "expectations": len(summary["rules"]),
        "failed": len(failed),
        "failed_rules": json.dumps(failed, default=str) if failed else None,
        "validated_at": datetime.now(UTC),
    }
    delta.overwrite_where(
        settings, VALIDATION, pa.Table.from_pylist([row], schema=VALIDATION.schema), f"batch_date = '{day}'"
    )


def read_validation(settings: Settings, day: date) -> dict | None:
    """The day's recorded outcome (None: the day's features were never validated, e.g. backfilled)."""
    frame = delta.read(settings, VALIDATION, filters=[("batch_date", "=", day)]).to_pandas()
    return None if frame.empty else frame.iloc[-1].to_dict()


def _range(name: str) -> tuple[float | None, float | None]:
    if name.startswith(("tx_during_",)):
        return 0, 1
    if name.startswith("customer_nb_tx_"):
        return 1, None  # the current transaction is always in its own window
    if name.startswith(("terminal_risk_", "terminal_known_fraud_share_")):
        return 0, 1
    if name == "terminal_days_since_known_fraud":
        return 0, max(KNOWN_FRAUD_HORIZON_DAYS, NO_KNOWN_FRAUD_DAYS)  # the sentinel is the largest value
    return 0, None  # counts, amounts, averages, ratios


def expectations(expected_rows: int) -> list[dict]:
    """The suite as plain expectation configurations (type, kwargs, meta.rule)."""
    out = [
        {
            "type": "expect_table_row_count_to_equal",
            "kwargs": {"value": expected_rows},
            "meta": {"rule": "rows_equal_accepted_transactions"},
        },
        {
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": "transaction_id"},
            "meta": {"rule": "one_row_per_transaction"},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "feature_set_version", "value_set": [FEATURE_SET_VERSION]},
            "meta": {"rule": "current_feature_set_version"},
        },
    ]
    for f in FEATURES:
        out.append(
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": f.name},
                "meta": {"rule": f"{f.name}_not_null"},
            }
        )
        lo, hi = _range(f.name)
        out.append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": f.name, "min_value": lo, "max_value": hi},
                "meta": {"rule": f"{f.name}_in_range"},
            }
        )
    return out


def validate_frame(frame, expected_rows: int) -> dict:
    """Run the suite on a pandas frame of one day's features; return {success, rules: {rule: ok}}."""
    suite = gx.suite("transaction_features", expectations(expected_rows))
    try:
        results = gx.run_suite(frame, suite, result_format={"result_format": "SUMMARY"})
    except gx.ExpectationError as exc:
        raise FeatureValidationError(str(exc)) from exc
    rules = {}
    for rule, res in results:
        rules[rule] = {
            "success": bool(res.success),
            "unexpected": res.result.get("unexpected_count", res.result.get("observed_value")),
        }
    return {
        "success": all(r["success"] for r in rules.values()),
        "rows": len(frame),
        "expected_rows": expected_rows,
        "rules": rules,
    }


def validate_feature_partition(day: date | str, settings: Settings | None = None) -> dict:
    """Validate ``day``'s feature partition; raise FeatureValidationError when it fails."""
    from pyspark.sql import functions as F

    from jobs.features.build import FEATURES_TABLE
    from jobs.platform.spark import get_spark

    day = date.fromisoformat(day) if isinstance(day, str) else day
    settings = settings or get_settings()
    spark = get_spark(settings, app_name="feature-validation")
    accepted = spark.table("bronze.transactions").where(F.col("batch_date") == F.lit(day)).count()
    frame = spark.table(FEATURES_TABLE).where(F.col("batch_date") == F.lit(day)).toPandas()
    summary = validate_frame(frame, accepted)
    summary["batch_date"] = day.isoformat()
    failed = {k: v for k, v in summary["rules"].items() if not v["success"]}
    record_validation(settings, day, summary, failed)
    if failed:
        raise FeatureValidationError(
            f"features of {day} failed {len(failed)} expectation(s): {json.dumps(failed, default=str)}"
        )
    log.info("features of %s: %d rows, %d expectations passed", day, summary["rows"], len(summary["rules"]))
    return {
        "batch_date": summary["batch_date"],
        "rows": summary["rows"],
        "expectations": len(summary["rules"]),
        "success": True,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.features.validate", description="Validate one day's features."
    )
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        print(json.dumps(validate_feature_partition(args.date)))
    except FeatureValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
