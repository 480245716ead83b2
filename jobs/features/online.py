"""The online (serving) computation of the registry's features, from an entity's recent events.

:func:`online_features` is what the serving path runs for one new transaction, on the state the
Spark job writes (``features.customer_state`` / ``features.terminal_state``). It follows the same
definitions as :func:`jobs.features.build.compute_features`; the property-based test proves both
equal a brute-force reference, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from jobs.features.registry import (
    CUSTOMER_WINDOWS,
    DAY_US,
    KNOWN_FRAUD_HORIZON_DAYS,
    KNOWN_FRAUD_WINDOWS,
    NIGHT_LAST_HOUR,
    NO_KNOWN_FRAUD_DAYS,
    TERMINAL_WINDOWS,
)

_MICROSECOND = timedelta(microseconds=1)


def cents(amount: float) -> int:
    """Amount in integer cents, rounded half up like Spark's ``round`` (the unit averages use)."""
    return int(Decimal(repr(amount * 100)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def online_features(
    tx_datetime: datetime,
    tx_amount: float,
    customer_history: Iterable[tuple[datetime, float]],
    terminal_history: Iterable[tuple[datetime, datetime | None]],
    delay_days: int,
) -> dict[str, float | int]:
    """Features of one new transaction from its entities' recent history (the serving path).

    ``customer_history``: (time, amount) of the customer's earlier transactions, and
    ``terminal_history``: (time, report_known_at or None) of the terminal's earlier transactions;
    the new transaction is added here, so pass earlier ones only. A report counts once
    ``report_known_at <= tx_datetime`` (the registry's rule). Entries outside the windows are
    ignored, so a superset is fine.
    """
    t = tx_datetime
    out: dict[str, float | int] = {
        "tx_amount": float(tx_amount),
        "tx_during_weekend": int(t.weekday() >= 5),
        "tx_during_night": int(t.hour <= NIGHT_LAST_HOUR),
    }
    customer = [(ts, cents(a)) for ts, a in customer_history] + [(t, cents(tx_amount))]
    for n in CUSTOMER_WINDOWS:
        lo = t - timedelta(days=n)
        in_window = [c for ts, c in customer if lo < ts <= t]
        out[f"customer_nb_tx_{n}d"] = len(in_window)
        out[f"customer_avg_amount_{n}d"] = (sum(in_window) / len(in_window)) / 100.0
    avg30 = out["customer_avg_amount_30d"]
    out["customer_amount_ratio_30d"] = float(tx_amount) / avg30 if avg30 != 0 else 1.0
    terminal = [(ts, known) for ts, known in terminal_history if ts <= t] + [(t, None)]
    known_frauds = [ts for ts, known in terminal if known is not None and known <= t]
    for n in TERMINAL_WINDOWS:
        lo, hi = t - timedelta(days=n + delay_days), t - timedelta(days=delay_days)
        nb = sum(1 for ts, _ in terminal if lo < ts <= hi)
        out[f"terminal_nb_tx_{n}d"] = nb
        out[f"terminal_risk_{n}d"] = sum(1 for ts in known_frauds if lo < ts <= hi) / nb if nb else 0.0
    for n in KNOWN_FRAUD_WINDOWS:
        lo = t - timedelta(days=n)
        nb = sum(1 for ts, _ in terminal if lo < ts <= t)
        k = sum(1 for ts in known_frauds if lo < ts)
        out[f"terminal_known_fraud_{n}d"] = k
        out[f"terminal_known_fraud_share_{n}d"] = k / nb
    recent = [ts for ts in known_frauds if ts > t - timedelta(days=KNOWN_FRAUD_HORIZON_DAYS)]
    out["terminal_days_since_known_fraud"] = (
        ((t - max(recent)) // _MICROSECOND) / DAY_US if recent else NO_KNOWN_FRAUD_DAYS
    )
    return out
