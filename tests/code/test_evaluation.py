"""Evaluation beyond accuracy, without Spark: slices, calibration, the temporal trend, robustness."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from jobs.evaluation.metrics import calibration, evaluate, parity, slices, temporal
from jobs.evaluation.robustness import robustness

CFG = {
    "evaluation": {
        "top_k": 5,
        "review_cost": 1.0,
        "amount_buckets": [0, 50, 1_000_000_000],
        "min_slice_frauds": 5,
        "min_parity_rows": 50,
        "robustness": {"perturbation": 0.01, "max_mean_abs_change": 0.02, "extreme_amount": 10_000.0},
    }
}


def _sliced(n_per_segment: dict[str, tuple[int, int]], seed: int = 0):
    """Rows per segment: (rows, frauds); scores separate the classes everywhere except in 'noisy'."""
    rng = np.random.default_rng(seed)
    parts, scores = [], []
    for segment, (rows, frauds) in n_per_segment.items():
        label = np.r_[np.ones(frauds, dtype=int), np.zeros(rows - frauds, dtype=int)]
        if segment.startswith("noisy"):
            s = rng.random(rows)  # no signal: AUC near 0.5
        else:
            s = np.where(label == 1, 0.6 + 0.4 * rng.random(rows), 0.5 * rng.random(rows))  # perfectly separated
        parts.append(pd.DataFrame({"segment": segment, "label": label}))
        scores.append(s)
    frame = pd.concat(parts, ignore_index=True)
    for column, value in (
        ("region", "r1"),
        ("merchant_category", "m1"),
        ("amount_bucket", "0-50"),
        ("night", "day"),
        ("weekend", "weekday"),
    ):
        frame[column] = value
    return frame, np.concatenate(scores)


def test_a_bad_slice_is_flagged_only_with_enough_frauds():
    frame, scores = _sliced({"good": (400, 40), "noisy_big": (300, 30), "noisy_small": (100, 4)})
    overall = float(roc_auc_score(frame["label"], scores))
    out = {(s["slice"], s["value"]): s for s in slices(frame, scores, overall, margin=0.05, min_frauds=5)}
    big, small, good = out[("segment", "noisy_big")], out[("segment", "noisy_small")], out[("segment", "good")]
    assert big["auc"] < overall - 0.05 and big["enough_support"] and big["flagged"]
    # as bad, but 4 frauds < min_slice_frauds: reported, never flagged
    assert small["auc"] < overall - 0.05 and not small["enough_support"] and not small["flagged"]
    assert good["auc"] == 1.0 and not good["flagged"]
    assert (small["support"], small["frauds"]) == (100, 4)
    # a slice with one class only has no AUC and cannot be flagged
    one_class = frame[frame["segment"] != "good"].assign(label=0)
    out = slices(one_class, scores[frame["segment"] != "good"], overall, 0.05, 5)
    assert all(s["auc"] is None and not s["flagged"] for s in out)


def test_calibration_reports_brier_and_a_reliability_curve():
    rng = np.random.default_rng(1)
    s = rng.random(5000)
    y = (rng.random(5000) < s).astype(int)  # calibrated by construction
    cal = calibration(y, s, bins=10)
    assert cal["brier"] == pytest.approx(brier_score_loss(y, s))
    assert cal["base_rate"] == pytest.approx(y.mean())
    assert len(cal["reliability"]) == 10 and sum(b["count"] for b in cal["reliability"]) == 5000
    assert all(abs(b["mean_predicted"] - b["fraction_fraud"]) < 0.06 for b in cal["reliability"])
    # an over-confident model: scores far above the observed fraud rate in the top bin
    over = calibration(y, np.clip(s * 3, 0, 1), bins=10)
    top = max(over["reliability"], key=lambda b: b["mean_predicted"])
    assert top["mean_predicted"] - top["fraction_fraud"] > 0.2 and over["brier"] > cal["brier"]


def test_temporal_trend_is_the_slope_of_daily_average_precision():
    rng = np.random.default_rng(2)
    rows, scores, start = [], [], date(2026, 1, 1)
    for i in range(5):  # day i: a share i/4 of the frauds gets a random score, the rest rank on top
        label = np.r_[np.ones(20, dtype=int), np.zeros(180, dtype=int)]
        s = np.where(label == 1, 0.9, 0.1) + 0.01 * rng.random(200)
        noisy = np.r_[np.arange(20) < 5 * i, np.zeros(180, dtype=bool)]
        s[noisy] = 0.1 * rng.random(noisy.sum())
        rows.append(pd.DataFrame({"tx_date": start + timedelta(days=i), "label": label}))
        scores.append(s)
    frame, scores = pd.concat(rows, ignore_index=True), np.concatenate(scores)
    out = temporal(frame, scores)
    aps = [d["average_precision"] for d in out["per_day"]]
    assert [d["day"] for d in out["per_day"]] == [str(start + timedelta(days=i)) for i in range(5)]
    assert aps[0] == 1.0 and all(a > b for a, b in zip(aps, aps[1:], strict=False))  # getting worse every day
    assert out["average_precision_trend_per_day"] == pytest.approx(np.polyfit(range(5), aps, 1)[0])
    assert out["average_precision_trend_per_day"] < 0


def _features(n=300, seed=4):
    from jobs.features.registry import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({name: rng.random(n) for name in FEATURE_NAMES})
    X["tx_amount"] = rng.uniform(5, 200, n).round(2)
    for w in (1, 7, 30):
        X[f"customer_nb_tx_{w}d"] = rng.integers(1, 20, n).astype(float)
        X[f"customer_avg_amount_{w}d"] = rng.uniform(5, 200, n)
    X["customer_amount_ratio_30d"] = X["tx_amount"] / X["customer_avg_amount_30d"]
    return X


def test_robustness_tests_pass_a_sane_model_and_fail_a_broken_one():
    X = _features()

    def sane(frame):  # more suspicious with the amount and with the terminal risk; NaN-tolerant
        z = 0.01 * frame["tx_amount"].fillna(0) + 2 * frame["terminal_risk_7d"].fillna(0) - 3
        return 1 / (1 + np.exp(-z.to_numpy()))

    results = {t["name"]: t for t in robustness(sane, X, CFG, seed=0)}
    assert set(results) == {
        "missing_values_scored",
        "small_amount_perturbation",
        "extreme_amount_not_less_suspicious",
        "compromised_terminal_not_less_suspicious",
    }
    assert all(t["passed"] for t in results.values()), results
    assert 0 < results["small_amount_perturbation"]["value"] <= 0.02

    def broken(frame):  # NaN on missing input, and a large amount looks *less* suspicious
        z = -0.05 * frame["tx_amount"] - 2 * frame["terminal_risk_7d"]
        return (1 / (1 + np.exp(-z))).to_numpy()

    results = {t["name"]: t for t in robustness(broken, X, CFG, seed=0)}
    assert not results["missing_values_scored"]["passed"] and results["missing_values_scored"]["value"] < 1
    assert not results["extreme_amount_not_less_suspicious"]["passed"]
    assert not results["compromised_terminal_not_less_suspicious"]["passed"]

    # a model that learned card testing: tiny amounts are suspicious, so a tiny payment made extreme
    # scores lower; the directional tests judge the genuine rows it does not alert on, where it still holds
    def card_testing_aware(frame):
        tiny = frame["tx_amount"].fillna(0) < 3
        return np.where(tiny, 0.95, np.minimum(sane(frame), 0.9))

    X_ct = X.copy()
    X_ct.loc[X_ct.index[: len(X_ct) // 4], "tx_amount"] = 1.5  # a quarter of the rows are card tests (frauds)
    labels = np.r_[np.ones(len(X_ct) // 4), np.zeros(len(X_ct) - len(X_ct) // 4)]
    everywhere = {t["name"]: t for t in robustness(card_testing_aware, X_ct, CFG, seed=0)}
    assert not everywhere["extreme_amount_not_less_suspicious"]["passed"]  # judged on every row: refused
    unflagged = {t["name"]: t for t in robustness(card_testing_aware, X_ct, CFG, seed=0, alert_threshold=0.9)}
    assert unflagged["extreme_amount_not_less_suspicious"]["passed"], unflagged
    # in a wave the daily alert budget leaves card tests under the threshold: "not alerted" alone refuses
    # the model, "genuine and not alerted" does not
    budget = {t["name"]: t for t in robustness(card_testing_aware, X_ct, CFG, seed=0, alert_threshold=0.99)}
    assert not budget["extreme_amount_not_less_suspicious"]["passed"]
    genuine = {
        t["name"]: t for t in robustness(card_testing_aware, X_ct, CFG, seed=0, alert_threshold=0.99, labels=labels)
    }
    assert genuine["extreme_amount_not_less_suspicious"]["passed"], genuine
    assert "genuine transactions it does not alert on" in genuine["extreme_amount_not_less_suspicious"]["description"]
    results = {t["name"]: t for t in robustness(broken, X, CFG, seed=0, alert_threshold=0.9, labels=np.zeros(len(X)))}
    assert not results["extreme_amount_not_less_suspicious"]["passed"]  # the broken model still fails
    assert not results["compromised_terminal_not_less_suspicious"]["passed"]

    jittery = lambda frame: ((frame["tx_amount"].fillna(0) * 7.3) % 1).to_numpy()  # any cent moves the score
    results = {t["name"]: t for t in robustness(jittery, X, CFG, seed=0)}
    assert not results["small_amount_perturbation"]["passed"] and results["small_amount_perturbation"]["value"] > 0.02


def test_evaluate_puts_the_parts_together_and_lists_flagged_slices():
    frame, scores = _sliced({"good": (400, 40), "noisy_big": (300, 30)})
    frame["tx_date"] = date(2026, 1, 1)
    frame["customer_id"] = [f"c{i}" for i in range(len(frame))]
    frame["tx_amount"] = 10.0
    frame["tx_during_night"], frame["tx_during_weekend"] = 0, 0
    frame = frame.drop(columns=["amount_bucket", "night", "weekend"])
    report = evaluate(frame, scores, CFG, slice_margin=0.05)
    assert report["rows"] == 700 and report["frauds"] == 70
    assert report["flagged_slices"] == ["segment=noisy_big"]
    assert report["overall"]["k"] == 5 and report["overall"]["card_precision_at_k"] == 1.0  # top 5 cards are frauds
    assert report["cost"]["alerts"] == 5


def test_parity_counts_alerts_and_false_positives_per_segment_and_region():
    # north: 100 genuine rows, 10 of them alerted; south: 100 genuine, none alerted; tiny: 10 rows, all alerted
    rows = [("north", 0, 0.9)] * 10 + [("north", 0, 0.1)] * 90 + [("north", 1, 0.95)] * 5
    rows += [("south", 0, 0.1)] * 100 + [("south", 1, 0.9)] * 5 + [("tiny", 0, 0.99)] * 10
    frame = pd.DataFrame(rows, columns=["region", "label", "score"])
    frame["segment"] = "all"
    out = parity(frame, frame["score"], threshold=0.5, min_rows=50)
    north, south, tiny = out["region"]["groups"]
    assert (north["value"], north["alerts"], north["false_positives"], north["genuine"]) == ("north", 15, 10, 100)
    assert north["false_positive_rate"] == 0.1 and north["alert_rate"] == 15 / 105
    assert (south["false_positives"], south["false_positive_rate"], south["alert_rate"]) == (0, 0.0, 5 / 105)
    assert tiny["false_positive_rate"] == 1.0 and not tiny["enough_support"]  # reported, not in the gaps
    assert out["region"]["false_positive_rate_gap"] == pytest.approx(0.1)
    assert out["region"]["alert_rate_gap"] == pytest.approx(10 / 105)
    assert out["segment"]["false_positive_rate_gap"] is None  # one group: nothing to compare


def test_permutation_benefit_credits_the_informative_feature_and_flags_noise():
    from types import SimpleNamespace

    import lightgbm as lgb

    from jobs.evaluation.benefit import permutation_benefit
    from jobs.features.registry import FEATURE_NAMES, features_matrix

    rng = np.random.default_rng(0)

    def part(n):
        frame = pd.DataFrame({name: rng.random(n) for name in FEATURE_NAMES})
        frame["label"] = (frame["tx_amount"] + 0.1 * rng.random(n) > 0.9).astype(int)  # only the amount matters
        return frame

    def fit(train):
        data = lgb.Dataset(features_matrix(train), train["label"], params={"verbosity": -1})
        return lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 1}, data, 30)

    folds = [SimpleNamespace(train=part(2000), evaluate=part(1000)) for _ in range(2)]
    out = permutation_benefit(folds, fit, n_repeats=2, seed=0, min_drop=0.01)
    assert out["folds"] == 2 and set(out["features"]) == set(FEATURE_NAMES)
    amount = out["features"]["tx_amount"]
    assert amount["helps"] and amount["ap_drop_mean"] > 0.3
    assert set(out["not_helping"]) == set(FEATURE_NAMES) - {"tx_amount"}
