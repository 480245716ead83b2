"""The feature registry: every model feature declared once, and the model's input matrix.

Each :class:`Feature` names its entity, window, dtype and meaning. The Spark job
(:mod:`jobs.features.build`) builds its columns from these declarations, and the serving path calls
:func:`jobs.features.online.online_features` on the state tables that job writes; both follow the
same definitions:

* ``customer_*_{N}d``: the customer's transactions with time in (t - N days, t], the current one
  included (so the count is at least 1). Averages are taken in integer cents, divided once.
* ``terminal_*_{N}d``: the terminal's transactions with time in (t - (N + D) days, t - D days],
  D = the label delay. ``terminal_risk`` is the share of them whose fraud report was known at t;
  0 when the window is empty.
* ``terminal_known_fraud_*_{N}d``: the terminal's transactions with time in (t - N days, t], the
  current one included, whose fraud report was known at t (the count, and its share of them).
* ``terminal_days_since_known_fraud``: days from the terminal's latest transaction with a known
  report, within (t - H days, t], to t; ``NO_KNOWN_FRAUD_DAYS`` when there is none.

**When a report is known.** Reports land as one file per day, so a report is known from the end of
the day its file covers (``report_known_at`` in ``marts.fct_transactions``), never from its
``reported_at``, which lies earlier in that day: "known at t" means ``report_known_at <= t``. Every
report-based feature follows this one rule, offline, online and in the test reference.

Adding a feature: declare it here, implement it in :func:`jobs.features.build.compute_features`
(Spark) and in :func:`jobs.features.online.online_features` (Python), and extend the reference
implementation in ``tests/data/test_features.py``; the property-based test then proves all three agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FEATURE_SET_MAJOR = 2  # 2: reports known from the end of their file's day; known-fraud features
CUSTOMER_WINDOWS = (1, 7, 30)
TERMINAL_WINDOWS = (1, 7, 30)
KNOWN_FRAUD_WINDOWS = (3, 7, 14, 28)  # chosen by measurement: README "Features"
KNOWN_FRAUD_HORIZON_DAYS = 28  # terminal_days_since_known_fraud looks back this far
NO_KNOWN_FRAUD_DAYS = 999.0  # its value when the terminal has no known fraud in the horizon
NIGHT_LAST_HOUR = 6  # tx_during_night: hour <= 6
DAY_US = 86_400 * 1_000_000  # windows are ranges over time in microseconds, offline and online


@dataclass(frozen=True)
class Feature:
    name: str
    entity: str  # transaction | customer | terminal
    window_days: int | None
    dtype: str  # int | double
    description: str
    owner: str = ""  # who answers for the feature's definition and quality (governance; not hashed)
    pii: bool | None = None  # personal data: it describes the cardholder (governance; not hashed)


# Governance, per entity: who owns the features and whether they are personal data. A transaction's
# own fields and a customer's spending describe the cardholder (personal data, GDPR art. 4); a
# terminal's counts describe a merchant's device. Kept out of FEATURE_SET_VERSION: changing an owner
# does not change a value.
OWNERS = {"transaction": "payments-data team", "customer": "fraud-ml team", "terminal": "fraud-ml team"}
PERSONAL_DATA = {"transaction": True, "customer": True, "terminal": False}
GOVERNANCE_FIELDS = ("owner", "pii")


def _governed(f: Feature) -> Feature:
    from dataclasses import replace

    return replace(
        f, owner=f.owner or OWNERS.get(f.entity, ""), pii=PERSONAL_DATA.get(f.entity) if f.pii is None else f.pii
    )


def _build() -> tuple[Feature, ...]:
    features = [
        Feature("tx_amount", "transaction", None, "double", "Transaction amount as delivered."),
        Feature(
            "tx_during_weekend", "transaction", None, "int", "1 if the transaction is on a Saturday or Sunday (UTC)."
        ),
        Feature(
            "tx_during_night", "transaction", None, "int", f"1 if the transaction's hour (UTC) is <= {NIGHT_LAST_HOUR}."
        ),
    ]
    for n in CUSTOMER_WINDOWS:
        features += [
            Feature(
                f"customer_nb_tx_{n}d",
                "customer",
                n,
                "int",
                f"Customer's transactions in (t - {n}d, t], current included.",
            ),
            Feature(
                f"customer_avg_amount_{n}d", "customer", n, "double", f"Customer's mean amount over (t - {n}d, t]."
            ),
        ]
    features.append(
        Feature(
            "customer_amount_ratio_30d",
            "customer",
            30,
            "double",
            "Amount divided by the customer's 30-day mean amount (1 when that mean is 0): a spending spike "
            "against the card's own habit, which the compromised-card fraud pattern produces.",
        )
    )
    for n in TERMINAL_WINDOWS:
        features += [
            Feature(
                f"terminal_nb_tx_{n}d", "terminal", n, "int", f"Terminal's transactions in (t - ({n}+D)d, t - Dd]."
            ),
            Feature(
                f"terminal_risk_{n}d",
                "terminal",
                n,
                "double",
                f"Share of the terminal's transactions in (t - ({n}+D)d, t - Dd] with a fraud report known at t; 0 if none.",
            ),
        ]
    for n in KNOWN_FRAUD_WINDOWS:
        features += [
            Feature(
                f"terminal_known_fraud_{n}d",
                "terminal",
                n,
                "int",
                f"Terminal's transactions in (t - {n}d, t] whose fraud report is known at t.",
            ),
            Feature(
                f"terminal_known_fraud_share_{n}d",
                "terminal",
                n,
                "double",
                f"terminal_known_fraud_{n}d over the terminal's transactions in (t - {n}d, t], current included.",
            ),
        ]
    features.append(
        Feature(
            "terminal_days_since_known_fraud",
            "terminal",
            KNOWN_FRAUD_HORIZON_DAYS,
            "double",
            f"Days from the terminal's latest transaction in (t - {KNOWN_FRAUD_HORIZON_DAYS}d, t] with a fraud report "
            f"known at t, to t; {NO_KNOWN_FRAUD_DAYS:g} when there is none.",
        )
    )
    return tuple(_governed(f) for f in features)


FEATURES: tuple[Feature, ...] = _build()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BY_NAME = {f.name: f for f in FEATURES}


def lookback_days(delay_days: int) -> int:
    """How far back from a transaction its features reach (the history a job or the state must hold)."""
    return max(
        max(CUSTOMER_WINDOWS), max(TERMINAL_WINDOWS) + delay_days, max(KNOWN_FRAUD_WINDOWS), KNOWN_FRAUD_HORIZON_DAYS
    )


def feature_set_version() -> str:
    """``v<major>-<hash of the declarations>``: changes whenever a feature is added or redefined."""
    payload = json.dumps(
        {
            "features": [{k: v for k, v in asdict(f).items() if k not in GOVERNANCE_FIELDS} for f in FEATURES],
            "night": NIGHT_LAST_HOUR,
            "no_known_fraud": NO_KNOWN_FRAUD_DAYS,
            "major": FEATURE_SET_MAJOR,
        },
        sort_keys=True,
    )
    return f"v{FEATURE_SET_MAJOR}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


FEATURE_SET_VERSION = feature_set_version()


def features_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input: every registry feature, in registry order, as float64 (a missing value is representable)."""
    return frame[list(FEATURE_NAMES)].astype("float64")
