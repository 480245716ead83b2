"""The training set on real Delta tables: pinned versions (time travel), the span check, labels."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from jobs.training.dataset import FEATURES_TABLE, PINNED_TABLES, build_training_set, current_versions, load_training_set

from tables import restore


def test_pinned_versions_reproduce_the_set_after_the_tables_change(feature_history, settings, spark, tmp_path):
    days = feature_history
    quick = settings.override(data={"label_maturity_days": 2})  # the history's frauds are reported within a day
    windows = dict(last_test_day=days[7], train_days=2, gap_days=2, test_days=1, n_folds=1)
    first = build_training_set(tmp_path / "a", quick, **windows)
    assert set(first["delta_versions"]) == set(PINNED_TABLES)
    assert first["delta_versions"] == current_versions(settings)

    # A later write changes the features; the pinned versions still read the old rows.
    spark.sql(
        f"UPDATE {FEATURES_TABLE} SET tx_amount = tx_amount + 1 WHERE batch_date = DATE'{days[4]}'"
    )  # a training day
    try:
        pinned = build_training_set(tmp_path / "b", quick, versions=first["delta_versions"], **windows)
        latest = build_training_set(tmp_path / "c", quick, **windows)
    finally:
        restore(settings, {FEATURES_TABLE: first["delta_versions"][FEATURES_TABLE]})
    assert pinned["frame_hash"] == first["frame_hash"]
    assert latest["frame_hash"] != first["frame_hash"]
    assert latest["delta_versions"][FEATURES_TABLE] > first["delta_versions"][FEATURES_TABLE]

    # Labels in the stored set agree with the marts: a training fraud was reported before the cutoff.
    manifest, frame, main, folds = load_training_set(tmp_path / "a")
    reported = {
        r["transaction_id"]: r["reported_at"]
        for r in spark.sql(
            "SELECT transaction_id, reported_at FROM marts.fct_transactions WHERE reported_at IS NOT NULL"
        ).collect()
    }
    cutoff = datetime.fromisoformat(manifest["windows"]["cutoff"])
    frauds = main.train[main.train["label"] == 1]
    assert len(frauds) > 0 and all(reported[t] < cutoff for t in frauds["transaction_id"])
    assert cutoff == datetime.combine(days[7], datetime.min.time())
    assert manifest["rows"]["train"] == len(main.train) and len(folds) == 1


def test_a_span_before_the_first_feature_day_is_refused_with_the_windows(feature_history, settings, tmp_path):
    with pytest.raises(ValueError, match="not enough history"):
        build_training_set(
            tmp_path,
            settings.override(data={"label_maturity_days": 2}),
            last_test_day=feature_history[7],
            train_days=5,
            gap_days=2,
            test_days=1,
            n_folds=2,
        )


def test_windows_that_would_bias_the_labels_are_refused(feature_history, settings, spark, tmp_path):
    quick = settings.override(data={"label_maturity_days": 2})
    end = spark.sql("SELECT max(tx_date) FROM marts.fct_transactions").collect()[0][0]
    cases = [
        # the test window must end before labels are mature: 2 days before the data ends
        (
            dict(last_test_day=end, gap_days=2),
            f"the test window ends {end}, but labels are mature only up to {end - timedelta(days=2)}",
        ),
        (dict(last_test_day=feature_history[7], gap_days=1), "gap of 1 days < label maturity of 2 days"),
        (dict(last_test_day=feature_history[7], gap_days=2, n_folds=0), "at least one validation fold"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=re.escape(match)):
            build_training_set(tmp_path, quick, train_days=2, test_days=1, **{"n_folds": 1, **args})
    assert not (tmp_path / "frame.parquet").exists()


def test_transactions_without_features_are_refused_with_their_days(feature_history, settings, spark, tmp_path):
    days = feature_history
    versions = {**current_versions(settings), FEATURES_TABLE: 0}  # version 0: the table before any feature was written
    with pytest.raises(ValueError, match=r"transactions without features \(per day: \{'2025-03-0[0-9]': [0-9]+") as err:
        build_training_set(
            tmp_path,
            settings.override(data={"label_maturity_days": 2}),
            last_test_day=days[7],
            train_days=2,
            gap_days=2,
            test_days=1,
            n_folds=1,
            versions=versions,
        )
    assert "python -m jobs" in str(err.value)
