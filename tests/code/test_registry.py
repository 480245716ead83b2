"""The registry on a real MLflow store (SQLite, no Spark): promotion refusals, rollback, gate fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthetic import synthetic_frame, synthetic_plan


def _booster(frame, seed=0, rounds=20):
    import lightgbm as lgb

    from jobs.features.registry import features_matrix

    label = frame["reported_at"].notna().astype(int).to_numpy()
    params = {"objective": "binary", "verbosity": -1, "seed": seed, "num_threads": 1, "num_leaves": 7}
    return lgb.train(params, lgb.Dataset(features_matrix(frame), label), num_boost_round=rounds)


def _new_version(settings, run_dir: Path, frame, tags: dict | None = None, seed: int = 0) -> dict:
    """Log a small LightGBM model in a run carrying ``tags`` and register it as the challenger."""
    import mlflow

    from jobs.features.registry import FEATURE_SET_VERSION
    from jobs.platform.tracking import experiment_id, mlflow_client
    from jobs.release.registry import register_challenger

    client = mlflow_client(settings)
    run_tags = {
        "feature_set_version": FEATURE_SET_VERSION,
        "window.cutoff": "2026-01-01T00:00:00",
        "window.test": "2026-01-12..2026-01-14",
        **(tags or {}),
    }  # synthetic_plan's windows
    run = client.create_run(experiment_id(settings), tags=run_tags)
    with mlflow.start_run(run_id=run.info.run_id):
        info = mlflow.lightgbm.log_model(_booster(frame, seed), name="model", pip_requirements=["lightgbm"])
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = {
        "key": run_dir.name,
        "run_dir": str(run_dir),
        "parent_run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "model_id": info.model_id,
        "metrics": {"test_auc": 0.9},
        "best_config": {"num_leaves": 7},
        "best_rounds": 20,
        "n_trials": 1,
    }
    return register_challenger(ctx, settings)


def _tag(settings, version, **tags):
    from jobs.platform.tracking import mlflow_client

    client = mlflow_client(settings)
    for k, v in tags.items():
        client.set_model_version_tag(settings.mlflow.model_name, version, k.replace("__", "."), v)


def _alias(settings, alias):
    from jobs.platform.tracking import mlflow_client
    from jobs.release.registry import alias_version

    mv = alias_version(mlflow_client(settings), settings.mlflow.model_name, alias)
    return None if mv is None else str(mv.version)


@pytest.fixture
def frame():
    return synthetic_frame(days=6, per_day=100)


def test_promote_refuses_ungated_gate_rejected_and_person_rejected_versions(mlflow_settings, tmp_path, frame):
    from jobs.release.registry import promote, record_rejection

    s = mlflow_settings
    v1 = _new_version(s, tmp_path / "r1", frame)["version"]
    with pytest.raises(ValueError, match=r"did not pass the gate \(not gated\)"):
        promote(v1, "jane", settings=s)
    _tag(s, v1, gate__decision="rejected", gate__champion_at_gate="none")
    with pytest.raises(ValueError, match=r"did not pass the gate \(rejected\)"):
        promote(v1, "jane", settings=s)
    _tag(s, v1, gate__decision="passed")
    record_rejection(v1, by="bob", at="2026-01-02T00:00:00+00:00", settings=s)
    with pytest.raises(ValueError, match="rejected by bob at 2026-01-02"):
        promote(v1, "jane", settings=s)
    assert _alias(s, "champion") is None  # nothing of the above ever served


def test_promote_refuses_a_version_gated_against_another_champion_and_rollback_restores(
    mlflow_settings, tmp_path, frame
):
    from jobs.platform.tracking import mlflow_client
    from jobs.release.registry import promote, rollback, status

    s = mlflow_settings
    v1 = _new_version(s, tmp_path / "r1", frame)["version"]
    v2 = _new_version(s, tmp_path / "r2", frame, seed=1)["version"]
    for v in (v1, v2):
        _tag(s, v, gate__decision="passed", gate__champion_at_gate="none")  # both gated while there was no champion
    first = promote(v1, "jane", approved_at="2026-01-02T10:00:00+00:00", settings=s)
    assert first == {
        "version": v1,
        "previous": None,
        "approved_by": "jane",
        "approved_at": "2026-01-02T10:00:00+00:00",
        "promoted_at": first["promoted_at"],
    }
    assert _alias(s, "champion") == v1
    with pytest.raises(ValueError, match=f"gated against champion none, but the champion is now {v1}"):
        promote(v2, "jane", settings=s)
    assert _alias(s, "champion") == v1

    v3 = _new_version(s, tmp_path / "r3", frame, seed=2)["version"]
    _tag(s, v3, gate__decision="passed", gate__champion_at_gate=v1)
    assert promote(v3, "kim", settings=s)["previous"] == v1
    assert (_alias(s, "champion"), _alias(s, "previous_champion")) == (v3, v1)
    client = mlflow_client(s)
    assert client.get_model_version(s.mlflow.model_name, v1).tags.get("retired_at")
    assert client.get_model_version(s.mlflow.model_name, v3).tags["approved_by"] == "kim"
    st = status(s)
    assert (
        st["champion"]["version"] == v3
        and st["previous_champion"]["version"] == v1
        and st["champion"]["approved_by"] == "kim"
    )
    assert st["challenger"]["version"] == v3  # the latest registered version

    assert rollback("ops-oncall", settings=s) == {"champion": v1, "rolled_back": v3, "rollout_aborted": None}
    assert (_alias(s, "champion"), _alias(s, "previous_champion")) == (v1, None)
    tags = client.get_model_version(s.mlflow.model_name, v3).tags
    assert tags["rolled_back_by"] == "ops-oncall" and tags["rolled_back_at"]
    with pytest.raises(ValueError, match="nothing to roll back to"):
        rollback("ops-oncall", settings=s)
    assert _alias(s, "champion") == v1

    # every promotion and the rollback are in the append-only audit log, which refuses a delete
    from deltalake import DeltaTable

    from jobs.platform import delta
    from jobs.release import audit

    trail = [(r["action"], r["version"], r["actor"]) for r in audit.read(settings=s)]
    assert trail == [("promote", v1, "jane"), ("promote", v3, "kim"), ("rollback", v3, "ops-oncall")]
    assert [r["action"] for r in status(s)["recent_decisions"]] == ["promote", "promote", "rollback"]
    with pytest.raises(Exception, match="append-only"):
        DeltaTable(str(delta.path(s, audit.TABLE))).delete(f"version = '{v1}'")
    assert len(audit.read(settings=s)) == 3


def test_an_approved_challenger_is_a_candidate_unless_there_is_no_champion(mlflow_settings, tmp_path, frame):
    """train_model's approval: the first model is champion at once; later ones wait as candidate for deploy_model,
    with the champion untouched, and a rollback during a rollout ends the rollout."""
    from jobs.platform.tracking import mlflow_client
    from jobs.release import rollout
    from jobs.release.registry import approve_for_deployment, promote, rollback

    s = mlflow_settings
    client = mlflow_client(s)
    v1 = _new_version(s, tmp_path / "a1", frame)["version"]
    _tag(s, v1, gate__decision="passed", gate__champion_at_gate="none")
    assert approve_for_deployment(v1, "jane", settings=s)["deployment"] == "first champion"
    assert _alias(s, "champion") == v1 and _alias(s, "candidate") is None

    v2 = _new_version(s, tmp_path / "a2", frame, seed=1)["version"]
    _tag(s, v2, gate__decision="passed", gate__champion_at_gate=v1)
    out = approve_for_deployment(v2, "kim", settings=s)
    assert out["deployment"] == "candidate" and out["approved_by"] == "kim"
    assert (_alias(s, "champion"), _alias(s, "candidate")) == (v1, v2)
    assert rollout.read_state(client, s.mlflow.model_name) == rollout.ServingState(champion=v1, candidate=v2)

    rollout.set_mode(client, s.mlflow.model_name, v2, rollout.CANARY, 0.25, "test")
    state = rollout.read_state(client, s.mlflow.model_name)
    assert (state.candidate, state.mode, state.share, state.by) == (v2, "canary", 0.25, "test")
    # a mode written for another version never applies to the current candidate
    client.set_registered_model_tag(s.mlflow.model_name, "rollout.version", v1)
    assert rollout.read_state(client, s.mlflow.model_name).mode is None
    rollout.set_mode(client, s.mlflow.model_name, v2, rollout.SHADOW, 0.0, "test")

    v3 = _new_version(s, tmp_path / "a3", frame, seed=2)["version"]
    _tag(s, v3, gate__decision="passed", gate__champion_at_gate=v1)
    promote(v3, "kim", settings=s)
    assert rollback("ops", settings=s)["rollout_aborted"] == v2
    assert rollout.read_state(client, s.mlflow.model_name) == rollout.ServingState(champion=v1)


def test_canary_buckets_are_stable_uniform_and_nested():
    """The same card always lands in the same bucket; shares of cards follow the share; a card in the 5%
    canary stays in the 25% one; another candidate version spreads the cards differently."""
    from jobs.release.rollout import canary_bucket

    cards = [f"C{i}" for i in range(20_000)]
    buckets = [canary_bucket(c, "7") for c in cards]
    assert buckets == [canary_bucket(c, "7") for c in cards]
    for share in (0.05, 0.2, 0.5):
        assert abs(sum(b < share for b in buckets) / len(cards) - share) < 4 * (share * (1 - share) / len(cards)) ** 0.5
    assert all(b < 0.25 for b in buckets if b < 0.05)
    other = [canary_bucket(c, "8") < 0.2 for c in cards]
    same = sum(a == (b < 0.2) for a, b in zip(other, buckets, strict=True)) / len(cards)
    assert same < 0.75  # independent spreads agree on 0.8^2 + 0.2^2 = 68% of cards


def _gate_ctx(settings, tmp_path, name, frame, tags=None, seed=0):
    """A challenger with a stored training set and evaluation report, as train_model leaves it."""
    from jobs.config import load_training_config
    from jobs.evaluation import baseline, metrics, report, robustness
    from jobs.features.registry import features_matrix
    from jobs.training.dataset import load_training_set, write_training_set

    run_dir = tmp_path / name
    write_training_set(frame, synthetic_plan(days=16), {}, maturity_days=1, out_dir=run_dir)
    _, _, main, _ = load_training_set(run_dir)
    ctx = _new_version(settings, run_dir, main.train, tags, seed=seed)
    booster = _booster(main.train, seed)
    cfg = load_training_config(settings)
    predict = lambda X: booster.predict(features_matrix(X))
    result = metrics.evaluate(main.evaluate, predict(main.evaluate), cfg, settings.gate.slice_margin)
    result["robustness"] = robustness.robustness(predict, features_matrix(main.evaluate), cfg, settings.training.seed)
    base = baseline.fit_baseline(main.train, 0)
    result["baseline"] = metrics.evaluate(main.evaluate, base(main.evaluate), cfg, settings.gate.slice_margin)[
        "overall"
    ]
    result["baseline"]["average_precision"] = 0.0  # the gate's baseline check is not what these tests are about
    report.write_report(result, run_dir / report.EVALUATION_DIR, "test")
    report.write_test_frame(main.evaluate, run_dir / report.EVALUATION_DIR)
    return ctx


@pytest.mark.parametrize(
    "champion_tags, why",
    [
        ({"feature_set_version": "v0-0123456789"}, "uses feature set v0-0123456789"),
        (
            {"window.cutoff": "2026-01-15T00:00:00"},
            "trained with labels up to 2026-01-15T00:00:00, after the test window starts (2026-01-12)",
        ),
    ],
)
def test_gate_falls_back_to_the_floors_when_the_champion_is_not_comparable(
    mlflow_settings, tmp_path, champion_tags, why
):
    from jobs.platform.tracking import mlflow_client
    from jobs.release.gate import gate
    from jobs.release.registry import promote

    s = mlflow_settings.override(gate={"min_auc": 0.99, "min_ap": 0.99})  # floors no model here reaches
    frame = synthetic_frame(days=16)
    champion = _new_version(s, tmp_path / "champion", frame.head(500), champion_tags)["version"]
    _tag(s, champion, gate__decision="passed", gate__champion_at_gate="none")
    promote(champion, "jane", settings=s)

    ctx = gate(_gate_ctx(s, tmp_path, "challenger", frame), s)
    mv = mlflow_client(s).get_model_version(s.mlflow.model_name, ctx["version"])
    assert mv.tags["gate.compared_with"] == "absolute thresholds" and mv.tags["gate.champion_at_gate"] == champion
    reasons = json.loads(mv.tags["gate.reasons"])
    assert any(r.startswith(f"not compared with the champion: champion v{champion} ") and why in r for r in reasons), (
        reasons
    )
    assert any(r.startswith("first_model_min_auc") for r in reasons) and ctx["gate"] == "rejected", reasons
    assert (Path(ctx["run_dir"]) / "model_card" / "model_card.md").exists()


def test_gate_compares_with_a_comparable_champion_on_the_same_rows(mlflow_settings, tmp_path):
    from jobs.platform.tracking import mlflow_client
    from jobs.release.gate import gate
    from jobs.release.registry import promote

    s = mlflow_settings.override(
        gate={
            "promotion_margin": -1.0,
            "slice_margin": 1.0,
            "baseline_cp_margin": -1.0,
            "min_net_savings": -1e12,
            "max_fpr_gap": 1.0,
            "max_alert_rate_gap": 1.0,
        }
    )  # any model passes: the comparison is the point
    frame = synthetic_frame(days=16)
    champion = _new_version(s, tmp_path / "champion", frame.head(800), seed=5)["version"]
    _tag(s, champion, gate__decision="passed", gate__champion_at_gate="none")
    promote(champion, "jane", settings=s)

    ctx = gate(_gate_ctx(s, tmp_path, "challenger", frame), s)
    mv = mlflow_client(s).get_model_version(s.mlflow.model_name, ctx["version"])
    assert mv.tags["gate.compared_with"] == champion and ctx["gate"] == "passed", ctx["gate_reasons"]
    decision = json.loads((Path(ctx["run_dir"]) / "gate.json").read_text())
    checks = {c["check"]: c for c in decision["checks"]}
    assert set(checks) == {
        "robustness",
        "beats_baseline",
        "beats_baseline_card_precision",
        "net_savings",
        "fairness_parity",
        "average_precision_gain",
        "no_slice_regression",
    }
    assert "vs champion" in checks["average_precision_gain"]["detail"]
    card = (Path(ctx["run_dir"]) / "model_card" / "model_card.md").read_text()
    assert f"champion v{champion} (same rows)" in card
    assert "## Fairness: alert rate and false-positive rate by customer group" in card and "| region | " in card


def test_a_stale_feature_set_version_is_refused(tmp_path):
    from jobs.training.dataset import write_training_set

    frame = synthetic_frame(days=16)
    frame.loc[frame.index[:10], "feature_set_version"] = "v1-stale00000"
    with pytest.raises(ValueError, match=r"feature-set version\(s\) \['v1-stale00000'\].*rebuild them"):
        write_training_set(frame, synthetic_plan(days=16), {}, maturity_days=1, out_dir=tmp_path)
    assert not (tmp_path / "frame.parquet").exists()


def test_a_part_without_both_classes_is_refused(tmp_path):
    from jobs.training.dataset import write_training_set

    frame = synthetic_frame(days=16)
    frame["reported_at"] = frame["reported_at"].where(np.zeros(len(frame), dtype=bool))  # no fraud at all
    with pytest.raises(ValueError, match="need both classes"):
        write_training_set(frame, synthetic_plan(days=16), {}, maturity_days=1, out_dir=tmp_path)


def test_a_persons_reject_is_recorded_on_the_version_and_an_approve_promotes(mlflow_settings, tmp_path, frame):
    from jobs.platform.tracking import mlflow_client
    from jobs.release.approval import promote_approved, record_outcome

    s = mlflow_settings
    v1 = _new_version(s, tmp_path / "r1", frame)["version"]
    v2 = _new_version(s, tmp_path / "r2", frame, seed=1)["version"]
    for v in (v1, v2):
        _tag(s, v, gate__decision="passed", gate__champion_at_gate="none")
    reject = {
        "chosen_options": ["Reject"],
        "responded_by_user": {"id": "u1", "name": "bob"},
        "responded_at": "2026-01-03T09:00:00+00:00",
    }
    out = record_outcome({"version": v1, "gate": "passed", "gate_reasons": []}, None, reject, s)
    assert out == {
        "outcome": "rejected by approver",
        "version": v1,
        "approval": "rejected",
        "rejected_by": "bob",
        "rejected_at": "2026-01-03T09:00:00+00:00",
    }
    tags = mlflow_client(s).get_model_version(s.mlflow.model_name, v1).tags
    assert (tags["approval"], tags["rejected_by"]) == ("rejected", "bob")

    approve = {
        "chosen_options": ["Approve"],
        "responded_by_user": {"id": "u2", "name": "jane"},
        "responded_at": "2026-01-03T10:00:00+00:00",
    }
    promoted = promote_approved({"version": v2, "gate": "passed"}, approve, s)
    assert (promoted["version"], promoted["approved_by"], promoted["approved_at"]) == (
        v2,
        "jane",
        "2026-01-03T10:00:00+00:00",
    )
    assert _alias(s, "champion") == v2


def test_an_archived_version_releases_its_pins_and_can_never_be_promoted(mlflow_settings, tmp_path, frame):
    from jobs.governance.lakehouse import protected_versions
    from jobs.release.registry import archive, promote

    s = mlflow_settings
    v1 = _new_version(s, tmp_path / "a1", frame)["version"]  # the challenger alias points at it
    with pytest.raises(ValueError, match="challenger"):
        archive(v1, "jane", settings=s)
    v2 = _new_version(s, tmp_path / "a2", frame, seed=1)["version"]  # the alias moved on: v1 may go
    for v in (v1, v2):
        _tag(s, v, gate__decision="passed", gate__champion_at_gate="none", **{"delta_version.marts__fct": str(v)})
    assert set(protected_versions(s)["marts.fct"]) == {int(v1), int(v2)}
    out = archive(v1, "jane", settings=s)
    assert out["archived"] is True and out["archived_by"] == "jane"
    assert set(protected_versions(s)["marts.fct"]) == {int(v2)}
    with pytest.raises(ValueError, match="archived by jane"):
        promote(v1, "jane", settings=s)
