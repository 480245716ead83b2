"""Drift statistics against a binned reference profile, on samples whose answer is known (no JVM)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jobs.evaluation.profile import build_reference, compare, profile_values, psi


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(7)


def test_a_second_sample_of_the_same_world_does_not_drift(rng):
    reference = profile_values(rng.lognormal(3, 1, 50_000))
    same = compare(reference, rng.lognormal(3, 1, 20_000))
    assert same.psi < 0.01 and same.ks_stat < 0.02 and same.ks_pvalue > 0.01
    flags = profile_values(rng.binomial(1, 0.3, 50_000))
    assert flags["kind"] == "binary" and flags["p1"] == pytest.approx(0.3, abs=0.01)
    same_flags = compare(flags, rng.binomial(1, 0.3, 20_000))
    assert same_flags.chi2_pvalue > 0.01 and same_flags.p1_change < 0.01


def test_a_shifted_sample_drifts_and_the_statistics_agree_with_scipy(rng):
    train = rng.lognormal(3, 1, 50_000)
    shifted = rng.lognormal(3, 1, 20_000) * 1.5  # amounts 50% higher
    drift = compare(profile_values(train), shifted)
    assert drift.psi > 0.1 and drift.ks_pvalue < 1e-6
    # the binned KS is a lower bound of the exact two-sample statistic, and close to it with deciles
    exact = stats.ks_2samp(train, shifted).statistic
    assert exact - 0.05 < drift.ks_stat <= exact + 1e-9
    flags = compare(profile_values(rng.binomial(1, 0.3, 50_000)), rng.binomial(1, 0.4, 20_000))
    assert flags.chi2_pvalue < 1e-6 and flags.p1_change == pytest.approx(0.1, abs=0.015)


def test_psi_matches_its_definition_and_empty_bins_stay_finite():
    r, c = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    assert psi(r, c) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert np.isfinite(psi(np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])))


def test_missing_values_and_ties_are_profiled(rng):
    counts = np.concatenate([np.zeros(800), rng.integers(1, 4, 200), [np.nan] * 10]).astype(float)
    profile = profile_values(counts)
    assert profile["kind"] == "continuous" and profile["missing"] == pytest.approx(10 / 1010)
    assert len(profile["proportions"]) == len(profile["edges"]) + 1  # tied deciles collapse to fewer bins
    assert sum(profile["proportions"]) == pytest.approx(1.0)
    assert compare(profile, counts).psi == pytest.approx(0.0, abs=1e-9)


def test_a_model_reference_holds_every_feature_and_the_test_scores(rng):
    frame = pd.DataFrame({"amount": rng.lognormal(3, 1, 1000), "night": rng.binomial(1, 0.2, 1000)})
    scores = rng.beta(1, 20, 500)
    ref = build_reference(frame, scores, alert_threshold=0.2, columns=["amount", "night"])
    assert set(ref["features"]) == {"amount", "night"} and ref["features"]["night"]["kind"] == "binary"
    assert ref["score"]["alert_rate"] == pytest.approx(float((scores >= 0.2).mean()))
    assert ref["n_rows"] == 1000
