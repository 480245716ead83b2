"""The alerts' numpy path and Evidently's report reach the same verdicts on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.config import get_settings, load_monitoring_config
from jobs.evaluation.profile import build_reference
from jobs.monitoring.checks import feature_drift_rows
from jobs.monitoring.report import evidently_drift, evidently_verdicts, reference_sample


@pytest.fixture(scope="module")
def world():
    """A reference and a current sample of real feature columns: some unchanged, some clearly shifted."""
    rng = np.random.default_rng(11)
    n_ref, n_cur = 20_000, 6_000

    def sample(n, shift):
        return pd.DataFrame(
            {
                "tx_amount": rng.lognormal(3 + (0.5 if shift else 0), 1, n),
                "customer_nb_tx_7d": rng.poisson(4 + (3 if shift else 0), n).astype(float),
                "customer_amount_ratio_30d": rng.gamma(2, 0.5, n),
                "terminal_risk_7d": rng.beta(0.5, 20, n),
                "tx_during_night": (rng.random(n) < (0.45 if shift else 0.2)).astype(float),
            }
        )

    reference = sample(n_ref, shift=False)
    current = sample(n_cur, shift=False)
    shifted = current.copy()
    moved = ["tx_amount", "customer_nb_tx_7d", "tx_during_night"]
    shifted[moved] = sample(n_cur, shift=True)[moved]
    return reference, current, shifted


def _alert_path(profile: dict, current: pd.DataFrame, cfg: dict) -> dict[str, bool]:
    """Per feature: does the alerts' check (``feature_drift_rows``) flag it?"""
    rows = feature_drift_rows(profile, current, "batch", cfg)
    return {c: any(r.subject == c and r.status == "alert" for r in rows) for c in current.columns}


@pytest.mark.parametrize("case", ["same world", "shifted"])
def test_the_alert_path_and_the_evidently_report_agree(world, case):
    """The check that raises alerts, and Evidently's report as the daily report builds it (against a
    sample drawn from the same profile), flag the same features."""
    cfg = load_monitoring_config(get_settings())["data_drift"]
    reference, current, shifted = world
    data = current if case == "same world" else shifted
    profile = build_reference(reference, np.zeros(1), None, list(reference.columns))
    ours = _alert_path(profile, data, cfg)
    sample = reference_sample(profile)[list(reference.columns)]
    theirs = {
        c: v["drift"] for c, v in evidently_verdicts(evidently_drift(sample, data, ["tx_during_night"], cfg)).items()
    }
    assert ours == theirs
    expected = set() if case == "same world" else {"tx_amount", "customer_nb_tx_7d", "tx_during_night"}
    assert {c for c, drift in ours.items() if drift} == expected


def test_the_report_reference_is_drawn_from_the_profile(world):
    """The report compares with a sample of the profile: it does not drift from the data it profiles."""
    cfg = load_monitoring_config(get_settings())["data_drift"]
    reference, current, _ = world
    profile = build_reference(reference, np.zeros(1), None, list(reference.columns))
    sample = reference_sample(profile, n=20_000)
    assert list(sample.columns) == list(reference.columns)
    assert sample["tx_during_night"].mean() == pytest.approx(reference["tx_during_night"].mean(), abs=0.01)
    assert set(sample["customer_nb_tx_7d"].unique()) <= set(reference["customer_nb_tx_7d"].unique())
    verdicts = evidently_verdicts(evidently_drift(sample, current, ["tx_during_night"], cfg))
    assert not any(v["drift"] for v in verdicts.values()), verdicts
