"""deploy_model's decisions without a service: the comparisons on prediction-log records, the plan, the shares.

The comparisons are pure functions of the records the service logs; these tests give them records
whose verdict is known by construction (the same scores, the inverse, failures, a shifted canary,
too few rows) and check each verdict and its reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from jobs.config import ConfigError, load_settings, parse_shares
from jobs.release.deploy import DeploymentFailed, compare_canary, compare_shadow

CFG = load_settings({"PIPELINE_DEPLOY_MIN_REQUESTS": "100"}).deploy


def _shadow_records(n: int, candidate: str = "2", flip: bool = False, errors: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    champion = rng.beta(1, 30, n)
    shadow = 1 - champion if flip else np.clip(champion * rng.normal(1, 0.05, n), 0, 1)
    threshold = np.quantile(champion, 0.98)
    rows = []
    for i, (a, b) in enumerate(zip(champion, shadow, strict=True)):
        row = {"score": float(a), "alert": bool(a >= threshold), "shadow_version": candidate, "shadow_ms": 0.5}
        if i < errors:
            row["candidate_error"] = "ValueError: boom"
        else:
            row |= {"shadow_score": float(b), "shadow_alert": bool(b >= threshold)}
        rows.append(row)
    return rows


def test_shadow_passes_a_similar_candidate_and_says_why_it_fails_others():
    ok = compare_shadow(_shadow_records(500), "2", CFG)
    assert ok.passed and ok.numbers["transactions"] == 500 and ok.numbers["rank_correlation"] > 0.9, ok
    assert ok.numbers["alert_agreement"] >= CFG.min_alert_agreement

    inverse = compare_shadow(_shadow_records(500, flip=True), "2", CFG)
    assert not inverse.passed and any("rank correlation" in r for r in inverse.reasons), inverse.reasons

    failing = compare_shadow(_shadow_records(500, errors=5), "2", CFG)
    assert not failing.passed and failing.numbers["error_rate"] == 0.01 and "failed on 1.00%" in failing.reasons[0]

    few = compare_shadow(_shadow_records(50), "2", CFG)
    assert not few.passed and "only 50 transactions were shadowed" in few.reasons[0]
    # rows shadowed by another version do not count for this one
    assert compare_shadow(_shadow_records(500, candidate="3"), "2", CFG).numbers["transactions"] == 0


def _canary_records(n_candidate: int, n_champion: int, shift: float = 0.0, fallbacks: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_candidate):
        s = float(min(1.0, rng.beta(1, 30) + shift))
        path = "fallback" if i < fallbacks else "canary"
        rows.append(
            {
                "customer_id": f"c{i}",
                "model_version": "1" if path == "fallback" else "2",
                "path": path,
                "score": s,
                "alert": s >= 0.1,
                "latency_ms": 5.0,
            }
        )
    for i in range(n_champion):
        s = float(rng.beta(1, 30))
        rows.append(
            {
                "customer_id": f"h{i}",
                "model_version": "1",
                "path": "champion",
                "score": s,
                "alert": s >= 0.1,
                "latency_ms": 5.0,
            }
        )
    return rows


def test_canary_fails_only_on_large_and_significant_differences_errors_or_latency():
    assert compare_canary(_canary_records(300, 1500), "2", CFG).passed

    shifted = compare_canary(_canary_records(300, 1500, shift=0.5), "2", CFG)
    assert not shifted.passed
    assert any("KS" in r for r in shifted.reasons) and any("alert rate" in r for r in shifted.reasons), shifted.reasons

    errors = compare_canary(_canary_records(300, 1500, fallbacks=3), "2", CFG)
    assert not errors.passed and errors.numbers["error_rate"] == 0.01

    slow = _canary_records(300, 1500)
    for r in slow:
        if r["path"] == "canary":
            r["latency_ms"] = CFG.max_p99_ms + 1
    assert any("p99" in r for r in compare_canary(slow, "2", CFG).reasons)

    few = compare_canary(_canary_records(20, 1500), "2", CFG)
    assert not few.passed and "only 20 transactions" in few.reasons[0]
    # share 1.0: no champion cards to compare with; errors and latency still decide
    assert compare_canary(_canary_records(300, 0), "2", CFG).passed


def test_canary_shares_must_increase_to_all_traffic():
    assert parse_shares("0.05, 0.25,1") == [0.05, 0.25, 1.0]
    for bad in ("0.5,0.25,1", "0,1", "0.5", "1.5", "a,1", ""):
        with pytest.raises(ValueError):
            parse_shares(bad)
    with pytest.raises(ConfigError, match="PIPELINE_DEPLOY_CANARY_SHARES"):
        load_settings({"PIPELINE_DEPLOY_CANARY_SHARES": "0.5"})
    with pytest.raises(ConfigError, match="PIPELINE_DEPLOY_STRATEGY"):
        load_settings({"PIPELINE_DEPLOY_STRATEGY": "yolo"})


def test_plan_deploys_the_candidate_and_goes_direct_without_a_champion(mlflow_settings, tmp_path):
    from jobs.platform.tracking import Alias, mlflow_client
    from jobs.release.deploy import plan

    s = mlflow_settings
    client = mlflow_client(s)
    name = s.mlflow.model_name
    client.create_registered_model(name)
    with pytest.raises(DeploymentFailed, match="no version given and no candidate"):
        plan(settings=s)
    with pytest.raises(DeploymentFailed, match="strategy 'yolo'"):
        plan("1", "yolo", settings=s)
    versions = [client.create_model_version(name, f"file://{tmp_path}/m{i}").version for i in (1, 2)]
    p = plan(versions[0], "progressive", settings=s)
    assert (p["strategy"], p["note"]) == ("direct", "no champion yet")  # nothing serves: nothing to shadow
    client.set_registered_model_alias(name, Alias.CHAMPION, versions[0])
    client.set_registered_model_alias(name, Alias.CANDIDATE, versions[1])
    p = plan(settings=s, canary_shares=[0.1, 1.0], observe_s=7)
    assert (p["version"], p["champion"], p["strategy"], p["canary_shares"], p["observe_s"]) == (
        str(versions[1]),
        str(versions[0]),
        "progressive",
        [0.1, 1.0],
        7,
    )
    assert plan(versions[0], settings=s)["note"] == "already the champion"
