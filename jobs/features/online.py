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

from jobs.features.registry import CUSTOMER_WINDOWS, NIGHT_LAST_HOUR, TERMINAL_WINDOWS


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

    ``customer_history``: (time, amount) of the customer's earlier transactions (the new one is
    added here; pass earlier ones only). ``terminal_history``: (time, reported_at or None) of the
    terminal's transactions. Entries outside the windows are ignored, so a superset is fine.
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
    terminal = list(terminal_history)
    for n in TERMINAL_WINDOWS:
        lo, hi = t - timedelta(days=n + delay_days), t - timedelta(days=delay_days)
        window = [rep for ts, rep in terminal if lo < ts <= hi]
        known = sum(1 for rep in window if rep is not None and rep <= t)
        out[f"terminal_nb_tx_{n}d"] = len(window)
        out[f"terminal_risk_{n}d"] = known / len(window) if window else 0.0
    return out
