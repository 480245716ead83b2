"""deploy_model's decisions without a service: the comparisons on prediction-log records, the plan, the shares.

The comparisons are pure functions of the records the service logs; these tests give them records
whose verdict is known by construction (the same scores, the inverse, failures, a shifted canary,
too few rows) and check each verdict and its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from jobs.config import ConfigError, load_settings, parse_shares
from jobs.deployment.stages import DeploymentFailed, compare_canary, compare_shadow

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

    # a candidate that never alerts agrees on 98% of transactions, above the 0.95 floor: the paired
    # alert test catches it
    silent = _shadow_records(1000)
    for r in silent:
        r["shadow_alert"] = False
    verdict = compare_shadow(silent, "2", CFG)
    assert verdict.numbers["alert_agreement"] >= CFG.min_alert_agreement
    assert not verdict.passed and any("alert rate 0.0000" in r for r in verdict.reasons), verdict.reasons

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
    from jobs.deployment.stages import plan
    from jobs.platform.tracking import Alias, mlflow_client

    s = mlflow_settings
    client = mlflow_client(s)
    name = s.mlflow.model_name
    client.create_registered_model(name)
    with pytest.raises(DeploymentFailed, match="no version given and no candidate"):
        plan(settings=s)
    with pytest.raises(DeploymentFailed, match="strategy 'yolo'"):
        plan("1", "yolo", settings=s)
    versions = [client.create_model_version(name, f"file://{tmp_path}/m{i}").version for i in (1, 2)]
    gated = {"gate.decision": "passed", "gate.champion_at_gate": str(versions[0])}
    for k, v in gated.items():
        client.set_model_version_tag(name, versions[1], k, v)
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
    # a version the gate did not pass may not answer anyone, not even a canary share
    client.set_model_version_tag(name, versions[1], "gate.decision", "rejected")
    with pytest.raises(DeploymentFailed, match="did not pass the gate"):
        plan(versions[1], settings=s)


def test_a_window_whose_rollout_was_changed_meanwhile_fails(mlflow_settings, tmp_path, monkeypatch):
    """Someone rolls back (or another rollout starts) during an observation window: the window's evidence is
    not about this rollout any more, so the stage fails and says why, whatever the comparison would say."""
    from jobs.deployment import stages as deploy
    from jobs.platform.tracking import Alias, mlflow_client
    from jobs.release import audit, rollout

    s = mlflow_settings
    client = mlflow_client(s)
    name = s.mlflow.model_name
    client.create_registered_model(name)
    v1, v2 = (client.create_model_version(name, f"file://{tmp_path}/m{i}").version for i in (1, 2))
    client.set_registered_model_alias(name, Alias.CHAMPION, v1)
    real_sleep = deploy.time.sleep

    def rolled_back_meanwhile(seconds):
        rollout.clear(client, name)
        real_sleep(min(seconds, 0.1))

    monkeypatch.setattr(deploy.time, "sleep", rolled_back_meanwhile)
    p = {"version": str(v2), "actor": "test-run", "observe_s": 1, "strategy": "progressive"}
    with pytest.raises(DeploymentFailed, match="the rollout was changed during the window"):
        deploy.observe(p, "shadow", settings=s)
    (row,) = audit.read(str(v2), settings=s)
    assert (row["action"], row["decision"]) == ("deploy.shadow", "failed")


def test_prediction_log_loads_into_a_table_from_before_the_deployment_columns(settings, tmp_path):
    """monitoring.prediction_log created without path/shadow columns (the serving release) takes the new
    records: the columns are added, the old rows read as null."""
    import json

    import pyarrow as pa
    from deltalake import DeltaTable

    from jobs.platform import delta
    from jobs.scoring import prediction_log as pl

    s = settings.override(storage={"data_dir": tmp_path / "data"})
    new = {"path", "shadow_version", "shadow_score", "shadow_alert", "candidate_error"}
    old_schema = pa.schema([f for f in pl.SPEC.schema if f.name not in new])
    old = delta.TableSpec(pl.SPEC.name, old_schema, pl.SPEC.partition_by)
    delta.ensure(s, old)
    directory = s.storage.prediction_log_dir
    directory.mkdir(parents=True)
    record = {
        "request_id": "r1",
        "transaction_id": "t1",
        "customer_id": "c1",
        "terminal_id": "x1",
        "tx_datetime": "2025-03-10 10:00:00",
        "tx_amount": 10.0,
        "served_at": "2025-03-10T10:00:01+00:00",
        "model_name": "fraud_detector",
        "model_version": "2",
        "feature_set_version": "v",
        "score": 0.5,
        "alert": True,
        "latency_ms": 1.0,
        "features": [0.0, 1.0],
        "path": "champion",
        "shadow_version": "3",
        "shadow_score": 0.25,
        "shadow_alert": False,
    }
    lines = [
        {"header": True, "feature_names": ["a", "b"]},
        record,
        {**record, "request_id": "r2", "transaction_id": "t2"},
    ]
    (directory / "20250310T100000-1-abc.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert pl.load_prediction_log(s)["rows"] == 2
    table = DeltaTable(str(delta.path(s, pl.SPEC.name))).to_pyarrow_table()
    assert new <= set(table.column_names)
    assert table.column("shadow_score").to_pylist() == [0.25, 0.25]
    # read_recent dedupes by request id and finds files moved to loaded/
    assert sorted(r["request_id"] for r in pl.read_recent(datetime(2025, 3, 10, tzinfo=UTC), s)) == ["r1", "r2"]
