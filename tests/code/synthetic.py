"""A synthetic training-set frame for tests that need no Spark (imported as ``synthetic``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

SYNTHETIC_START = date(2026, 1, 1)


def synthetic_frame(days: int = 16, per_day: int = 250, seed: int = 0, start: date = SYNTHETIC_START) -> pd.DataFrame:
    """Rows shaped like the training set's frame (features, times, reports, slice columns).

    About 6% of the rows are frauds, reported 1 to 20 hours later; amount and terminal risk carry
    the signal, so a model learns something and the gate has numbers to compare.
    """
    from jobs.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION

    rng = np.random.default_rng(seed)
    n = days * per_day
    day_index = np.repeat(np.arange(days), per_day)
    tx = (
        pd.to_datetime(start)
        + pd.to_timedelta(day_index, unit="D")
        + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    )
    fraud = rng.random(n) < 0.06
    frame = pd.DataFrame({name: rng.random(n) for name in FEATURE_NAMES})
    frame["tx_amount"] = np.round(np.where(fraud, rng.uniform(40, 250, n), rng.uniform(5, 200, n)), 2)
    for w in (1, 7, 30):
        frame[f"customer_nb_tx_{w}d"] = rng.integers(1, 10 * w, n).astype(float)
        frame[f"customer_avg_amount_{w}d"] = rng.uniform(20, 120, n)
        frame[f"terminal_risk_{w}d"] = np.clip(np.where(fraud, 0.08, 0.0) + 0.4 * rng.random(n), 0, 1)
    frame["customer_amount_ratio_30d"] = frame["tx_amount"] / frame["customer_avg_amount_30d"]
    frame["tx_during_weekend"] = (tx.dayofweek >= 5).astype(int)
    frame["tx_during_night"] = (tx.hour <= 6).astype(int)
    frame["transaction_id"] = [f"t{i:06d}" for i in range(n)]
    frame["tx_datetime"] = tx
    frame["tx_date"] = tx.date
    frame["customer_id"] = rng.integers(0, 600, n).astype(str)
    frame["terminal_id"] = rng.integers(0, 900, n).astype(str)
    frame["reported_at"] = pd.Series(tx + pd.to_timedelta(rng.integers(3600, 20 * 3600, n), unit="s")).where(fraud)
    frame["feature_set_version"] = FEATURE_SET_VERSION
    frame["segment"] = rng.choice(["budget", "premium"], n)
    frame["region"] = rng.choice(["north", "south"], n)
    frame["merchant_category"] = rng.choice(["grocery", "travel"], n)
    return frame.sort_values(["tx_datetime", "transaction_id"], kind="mergesort").reset_index(drop=True)


def synthetic_plan(days: int = 16, start: date = SYNTHETIC_START):
    """Windows over :func:`synthetic_frame`: 5-day training, 1-day gap, 3-day test, one fold."""
    from jobs.training.dataset import plan_windows

    last_test = start + timedelta(days=days - 3)
    return plan_windows(
        last_test,
        train_days=5,
        gap_days=1,
        test_days=3,
        n_folds=1,
        label_as_of=datetime.combine(start + timedelta(days=days), datetime.min.time()),
    )
