"""The request path's feature step: look up the entities' events, compute the features, record the transaction.

Kept apart from BentoML so it can be tested and benchmarked on its own. The features are
:func:`jobs.features.online.online_features` on the online store's events, the function the
property-based test proves equal to the Spark job's; the parity test proves it end to end over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from jobs.features.online import online_features
from jobs.features.registry import FEATURE_NAMES
from jobs.features.store import LiveTransaction, OnlineStore, from_us, to_us
from serving.schemas import Transaction


class FeatureStep:
    """Features of incoming transactions from the online store, each added to the store once scored."""

    def __init__(self, store: OnlineStore, record: bool = True) -> None:
        self.store = store
        self.record = record  # False: read-only (a smoke-test instance must not change the live store)
        self._lock = threading.Lock()  # one store connection per process: never used by two threads at once

    def features(self, transactions: Sequence[Transaction]) -> tuple[list[dict], float]:
        """Feature dicts of ``transactions`` in order, and the seconds spent on the store.

        Each transaction is recorded before the next is looked up, so two transactions of one card
        in one request see each other as they would in two requests; a transaction already
        recorded (a retry) is excluded from its own history and not recorded twice. Two
        transactions of one card arriving at the same instant on two worker processes may each
        miss the other (lookup and record are two steps); card networks send a card's payments
        one at a time, and the next materialization puts every transaction in the state.
        """
        with self._lock:
            return self._features(transactions)

    def _features(self, transactions: Sequence[Transaction]) -> tuple[list[dict], float]:
        out, store_s = [], 0.0
        delay = self.store.delay_days
        for tx in transactions:
            t = tx.time()
            ts_us = to_us(t)
            t0 = time.perf_counter()
            customer, terminal = self.store.history(tx.customer_id, tx.terminal_id, ts_us, exclude=tx.transaction_id)
            store_s += time.perf_counter() - t0
            feats = online_features(
                t,
                tx.tx_amount,
                [(from_us(ts), amount) for ts, amount in customer],
                [(from_us(ts), None if known is None else from_us(known)) for ts, known in terminal],
                delay,
            )
            if self.record:
                t0 = time.perf_counter()
                self.store.record(
                    [LiveTransaction(tx.transaction_id, tx.customer_id, tx.terminal_id, ts_us, float(tx.tx_amount))]
                )
                store_s += time.perf_counter() - t0
            out.append(feats)
        return out, store_s


def to_matrix(features: list[dict]) -> np.ndarray:
    """The model's input: one row per feature dict, columns in registry order, float64."""
    return np.array([[f[name] for name in FEATURE_NAMES] for f in features], dtype=np.float64)
