"""Invariance and directional tests: does the model behave as a fraud analyst expects?

Each test perturbs the test rows consistently (an amount change moves the customer's window means and
the 30-day ratio with it) and reports a value, a threshold and pass/fail; the gate requires all to pass.

The directional tests ("an extreme amount, a compromised terminal: not less suspicious") are judged
on the genuine transactions the model does not alert on (label 0, score below the alert threshold): the
expectation is about a genuine-looking payment turning riskier. A fraud's score may rest on the amount
itself: a card test is a tiny night payment on purpose, and the same payment at 10,000 is no card test,
so a lower score there is right. During a card-testing wave the daily alert budget leaves many such
frauds just under the threshold (``bench/drift_scenario.py``: 518 test rows, 98% frauds, 0.65-0.73
under a 0.73 threshold, 0.48 at 10,000), so "not alerted" alone still refused the models that learned
the wave. The compromised-terminal expectation is also built into the model: LightGBM fits with the
monotone constraints of ``jobs/conf/training.yaml`` (:func:`jobs.training.context.fixed_params`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from jobs.features.registry import FEATURE_NAMES, features_matrix


def _with_amount(X: pd.DataFrame, amount: np.ndarray) -> pd.DataFrame:
    """Rows as if the transaction had another amount: the amount, the customer's window means
    (which include the current transaction) and the 30-day ratio all move consistently."""
    out = X.copy()
    delta = amount - out["tx_amount"].to_numpy()
    out["tx_amount"] = amount
    for n in (1, 7, 30):
        nb = np.maximum(out[f"customer_nb_tx_{n}d"].to_numpy(), 1)
        out[f"customer_avg_amount_{n}d"] = out[f"customer_avg_amount_{n}d"].to_numpy() + delta / nb
    avg30 = out["customer_avg_amount_30d"].to_numpy()
    out["customer_amount_ratio_30d"] = np.where(avg30 != 0, amount / np.where(avg30 != 0, avg30, 1), 1.0)
    return out


def robustness(
    predict: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    cfg: dict,
    seed: int,
    alert_threshold: float | None = None,
    labels: np.ndarray | None = None,
) -> list[dict]:
    """Invariance and directional tests on the test rows; each with a value, a threshold and pass/fail.

    The directional tests look at the rows scored below ``alert_threshold`` whose ``labels`` are 0
    (None: no restriction on that side; every row when both are None or nothing is left).
    """
    rb = cfg["evaluation"]["robustness"]
    rng = np.random.default_rng(seed)
    base = np.asarray(predict(X), dtype=float)
    judged = np.ones(len(X), dtype=bool)
    if labels is not None:
        judged &= np.asarray(labels) == 0
    if alert_threshold is not None:
        judged &= base < alert_threshold
    if not judged.any():
        judged[:] = True
    scope = (" of genuine transactions" if labels is not None else "") + (
        " it does not alert on" if alert_threshold is not None else ""
    )
    tests = []

    missing = X.copy()
    mask = rng.random(missing.shape) < 0.1
    missing = missing.mask(mask)
    got = np.asarray(predict(missing), dtype=float)
    tests.append(
        {
            "name": "missing_values_scored",
            "kind": "invariance",
            "description": "10% of feature values set to missing: every row still gets a score in [0, 1]",
            "value": float(np.mean(np.isfinite(got) & (got >= 0) & (got <= 1))),
            "threshold": 1.0,
            "passed": bool(np.all(np.isfinite(got) & (got >= 0) & (got <= 1))),
        }
    )

    amounts = X["tx_amount"].to_numpy()
    noisy = _with_amount(X, np.round(amounts * (1 + rng.uniform(-rb["perturbation"], rb["perturbation"], len(X))), 2))
    change = float(np.mean(np.abs(np.asarray(predict(noisy), dtype=float) - base)))
    tests.append(
        {
            "name": "small_amount_perturbation",
            "kind": "invariance",
            "description": f"amounts moved by up to ±{rb['perturbation']:.0%}: mean |score change| stays small",
            "value": change,
            "threshold": rb["max_mean_abs_change"],
            "passed": change <= rb["max_mean_abs_change"],
        }
    )

    extreme = np.asarray(predict(_with_amount(X, np.full(len(X), rb["extreme_amount"]))), dtype=float)
    share = float(np.mean((extreme >= base - 1e-9)[judged]))
    tests.append(
        {
            "name": "extreme_amount_not_less_suspicious",
            "kind": "directional",
            "description": f"amount set to {rb['extreme_amount']:g}: the score does not drop (share of the rows{scope})",
            "value": share,
            "threshold": 0.95,
            "passed": bool(share >= 0.95 and np.all(np.isfinite(extreme))),
        }
    )

    risky = X.copy()  # every row's terminal as a known compromised one
    for c in FEATURE_NAMES:
        if c.startswith(("terminal_risk_", "terminal_known_fraud_share_")):
            risky[c] = 1.0
        elif c.startswith("terminal_known_fraud_"):
            risky[c] = np.maximum(risky[c], 1)
        elif c == "terminal_days_since_known_fraud":
            risky[c] = 0.0
    risk = np.asarray(predict(risky), dtype=float)
    share = float(np.mean((risk >= base - 1e-9)[judged]))
    tests.append(
        {
            "name": "compromised_terminal_not_less_suspicious",
            "kind": "directional",
            "description": "terminal risks and known-fraud shares set to 1, a known fraud just now: the score does "
            f"not drop (share of the rows{scope})",
            "value": share,
            "threshold": 0.95,
            "passed": share >= 0.95,
        }
    )
    return tests


def on_test_window(
    predict: Callable[[pd.DataFrame], np.ndarray], test: pd.DataFrame, cfg: dict, seed: int, alert_threshold: float
) -> list[dict]:
    """The tests as the gate runs them on a test window: its feature matrix, the directional tests judged
    on its genuine transactions (``label`` 0) scored below ``alert_threshold``."""
    return robustness(
        predict, features_matrix(test), cfg, seed, alert_threshold=alert_threshold, labels=test["label"].to_numpy()
    )
