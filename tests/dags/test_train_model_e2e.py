"""End to end: train_model through dag.test() twice on the simulated history.

Real Spark/Delta (pinned versions), real Ray Tune, real LightGBM, real MLflow (SQLite store and
registry). The first run must leave a champion that loads with ``models:/<name>@champion``; the
second, on the same data versions and seed, must reproduce the same model and metrics, which is
then no improvement: the gate rejects it, promotion is skipped, the champion stays.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from jobs.config import REPO_ROOT, get_settings

DAGS_DIR = REPO_ROOT / "dags"
TRIALS = 3

ENV = {
    "PIPELINE_LABEL_MATURITY_DAYS": "2",  # the history's frauds are reported within a day
    "PIPELINE_AUTO_APPROVE": "true",
    "PIPELINE_MIN_AUC": "0.6",  # a tiny history: the first-model floors are lowered, not skipped
    "PIPELINE_MIN_AP": "0.2",
    "PIPELINE_RAY_NUM_CPUS": "2",
}


@pytest.fixture
def training_settings(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _states(run):
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_train_model_promotes_a_first_champion_then_rejects_an_identical_challenger(airflow_db, feature_history, training_settings):
    import mlflow
    from airflow.dag_processing.dagbag import DagBag

    from jobs.train import mlflow_client

    s = training_settings
    days = feature_history
    dag = DagBag(dag_folder=str(DAGS_DIR / "train_model.py")).dags["train_model"]
    conf = {"last_test_day": str(days[7]), "train_days": 2, "gap_days": 2, "test_days": 1, "n_folds": 1, "n_trials": TRIALS}

    first = dag.test(logical_date=datetime(2025, 3, 11, tzinfo=timezone.utc), run_conf=conf)
    states = _states(first)
    assert first.state == "success", states
    assert states["promote"] == "success" and states["auto_approve"] == "success"
    assert states["approve_promotion"] == "skipped" and states["rejected"] == "skipped"

    client = mlflow_client(s)
    champion = client.get_model_version_by_alias(s.model_name, "champion")
    assert champion.tags["gate.decision"] == "passed"
    assert champion.tags["approved_by"].startswith("auto-approve") and champion.tags["approved_at"]
    assert "PASSED" in champion.description

    # The champion loads by alias and scores the feature rows.
    from jobs.train import features_matrix

    frame = __import__("pandas").read_parquet(next(s.training_dir.glob("*/frame.parquet")))
    model = mlflow.pyfunc.load_model(f"models:/{s.model_name}@champion")
    scores = model.predict(features_matrix(frame.head(20)))
    assert len(scores) == 20 and ((scores >= 0) & (scores <= 1)).all()

    # Lineage on the parent run, one nested run per trial, report, plots and model card as artifacts.
    run = client.get_run(champion.run_id)
    tags = run.data.tags
    for key in ("git_commit", "dbt_manifest_hash", "feature_set_version", "config_hash", "window.train", "window.test",
                "delta_version.features.transaction_features", "delta_version.marts.fct_transactions"):
        assert tags.get(key), key
    assert tags["window.test"] == f"{days[7]}..{days[7]}" and tags["window.train"] == f"{days[3]}..{days[4]}"
    nested = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(nested) == TRIALS and all(r.data.params for r in nested)
    artifacts = {f.path for d in ("evaluation", "evaluation/plots", "model_card") for f in client.list_artifacts(run.info.run_id, d)}
    assert {"evaluation/evaluation.json", "evaluation/evaluation.html", "evaluation/plots/roc.png",
            "evaluation/plots/precision_recall.png", "evaluation/plots/calibration.png", "evaluation/plots/slices.png",
            "evaluation/plots/feature_importance.png", "model_card/model_card.md", "model_card/model_card.html"} <= artifacts
    metrics = run.data.metrics
    for key in ("test_auc", "test_average_precision", "test_card_precision_at_100", "test_brier", "baseline_average_precision"):
        assert key in metrics

    # Same data versions, same seed: the same model and metrics; no gain, so the gate rejects it.
    second = dag.test(logical_date=datetime(2025, 3, 12, tzinfo=timezone.utc), run_conf=conf)
    states = _states(second)
    assert second.state == "success", states
    assert states["rejected"] == "success" and states["promote"] == "skipped" and states["auto_approve"] == "skipped"
    challenger = client.get_model_version_by_alias(s.model_name, "challenger")
    assert challenger.version != champion.version
    assert challenger.tags["gate.decision"] == "rejected" and "average_precision_gain" in challenger.tags["gate.reasons"]
    assert client.get_model_version_by_alias(s.model_name, "champion").version == champion.version
    again = client.get_run(challenger.run_id)
    for key in ("test_auc", "test_average_precision", "test_card_precision_at_100", "tune_best_average_precision"):
        assert again.data.metrics[key] == metrics[key], key
    assert {k: v for k, v in again.data.params.items() if k.startswith("best.")} == {k: v for k, v in run.data.params.items() if k.startswith("best.")}
    assert again.data.tags["data.frame_hash"] == tags["data.frame_hash"]
