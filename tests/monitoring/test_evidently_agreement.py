"""The alerts' numpy path and Evidently's report reach the same verdicts on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.config import get_settings, load_monitoring_config
from jobs.evaluation.profile import build_reference, compare
from jobs.monitoring.report import evidently_drift, evidently_verdicts, reference_sample


@pytest.fixture(scope="module")
def world():
    """A reference and a current sample: some columns unchanged, some clearly shifted."""
    rng = np.random.default_rng(11)
    n_ref, n_cur = 20_000, 6_000

    def sample(n, shift):
        return pd.DataFrame(
            {
                "amount": rng.lognormal(3 + (0.5 if shift else 0), 1, n),
                "count_7d": rng.poisson(4 + (3 if shift else 0), n).astype(float),
                "ratio": rng.gamma(2, 0.5, n),
                "night": (rng.random(n) < (0.45 if shift else 0.2)).astype(float),
                "weekend": (rng.random(n) < 0.28).astype(float),
            }
        )

    reference = sample(n_ref, shift=False)
    current = sample(n_cur, shift=False)
    shifted = current.copy()
    shifted[["amount", "count_7d", "night"]] = sample(n_cur, shift=True)[["amount", "count_7d", "night"]]
    return reference, current, shifted


def _ours(reference: pd.DataFrame, current: pd.DataFrame, cfg: dict) -> dict[str, bool]:
    profile = build_reference(reference, np.zeros(1), None, list(reference.columns))
    verdicts = {}
    for column, p in profile["features"].items():
        d = compare(p, current[column].to_numpy())
        if d.kind == "binary":
            verdicts[column] = d.chi2_pvalue < cfg["chi2_pvalue"] and d.p1_change >= cfg["p1_change_alert"]
        else:
            verdicts[column] = d.psi >= cfg["psi_alert"] or (
                d.ks_stat >= cfg["ks_stat_alert"] and d.ks_pvalue < cfg["ks_pvalue"]
            )
    return verdicts


@pytest.mark.parametrize("case", ["same world", "shifted"])
def test_numpy_checks_and_evidently_agree(world, case):
    cfg = load_monitoring_config(get_settings())["data_drift"]
    reference, current, shifted = world
    data = current if case == "same world" else shifted
    ours = _ours(reference, data, cfg)
    theirs = {
        c: v["drift"]
        for c, v in evidently_verdicts(evidently_drift(reference, data, ["night", "weekend"], cfg)).items()
    }
    assert ours == theirs
    expected = set() if case == "same world" else {"amount", "count_7d", "night"}
    assert {c for c, drift in ours.items() if drift} == expected


def test_the_report_reference_is_drawn_from_the_profile(world):
    """The report compares with a sample of the profile: it does not drift from the data it profiles."""
    cfg = load_monitoring_config(get_settings())["data_drift"]
    reference, current, _ = world
    profile = build_reference(reference, np.zeros(1), None, list(reference.columns))
    sample = reference_sample(profile, n=20_000)
    assert list(sample.columns) == list(reference.columns)
    assert sample["night"].mean() == pytest.approx(reference["night"].mean(), abs=0.01)
    verdicts = evidently_verdicts(evidently_drift(sample, current, ["night", "weekend"], cfg))
    assert not any(v["drift"] for v in verdicts.values()), verdicts
