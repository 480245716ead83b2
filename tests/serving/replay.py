"""Helpers of the serving tests: the replayed day and its transactions as the feature table holds them."""

from __future__ import annotations

from datetime import date

import pandas as pd

from jobs.config import Settings

REPLAY_DAY = date(2025, 3, 10)  # the shared history's last day; the store holds the state of the day before
TIMESTAMP = "%Y-%m-%d %H:%M:%S"


def day_transactions(settings: Settings, day: date) -> pd.DataFrame:
    """Day ``day``'s rows of ``features.transaction_features`` in time order (tx_amount is the raw amount)."""
    from jobs.scoring.batch import read_day_features

    return read_day_features(settings, day)
