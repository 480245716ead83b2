"""MLflow: the client on the configured store, the experiment, and every tag, metric and alias name.

The names are written once here and used by both sides: training writes the lineage tags and test
metrics on its run (:mod:`jobs.training`), the registry copies them to the model version and the
gate, status, model card and serving read them back (:mod:`jobs.release`). With the embedded
defaults the store is SQLite plus local artifacts under ``PIPELINE_DATA_DIR/mlflow``;
``MLFLOW_TRACKING_URI`` points the same code at a tracking server.
"""

from __future__ import annotations

import os
from enum import StrEnum

from jobs.config import Settings

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


class Alias(StrEnum):
    """Aliases on the registered model: what serves and what waits."""

    CHALLENGER = "challenger"  # the latest trained version, evaluated, waiting for (or refused by) the gate
    CHAMPION = "champion"  # the version that serves (models:/<name>@champion)
    PREVIOUS_CHAMPION = "previous_champion"  # the champion it replaced: the target of a rollback
    CANDIDATE = "candidate"  # approved, being rolled out by deploy_model (shadow or canary, see RolloutTag)


class RolloutTag:
    """Registered-model tags (not version tags) that say how the ``candidate`` is rolled out.

    With the aliases they are the whole serving state, read by the service in one registry call:
    no ``mode`` (or no candidate) = the champion answers everything.
    """

    MODE = "rollout.mode"  # "shadow" or "canary"
    SHARE = "rollout.share"  # canary: share of cards (hash of customer_id) the candidate answers
    VERSION = "rollout.version"  # the candidate the mode applies to (a stale mode never applies to a new candidate)
    STARTED_AT = "rollout.started_at"  # when the current phase started (UTC, ISO)
    BY = "rollout.by"  # who or what started it (deploy_model run, a person)


class Tag:
    """Tag keys on the training run (lineage) and on the model version (lineage, gate, approval)."""

    # lineage, written on the run by training and copied to the version at registration
    GIT_COMMIT = "git_commit"
    FEATURE_SET_VERSION = "feature_set_version"
    DBT_MANIFEST_HASH = "dbt_manifest_hash"
    CONFIG_HASH = "config_hash"
    TRAINING_KEY = "training_key"
    TRAINING_TRIGGER = "training.trigger"  # schedule, manual, or the monitoring's retrain request and its reason
    FRAME_HASH = "data.frame_hash"
    WINDOW_TRAIN = "window.train"
    WINDOW_GAP_DAYS = "window.gap_days"
    WINDOW_TEST = "window.test"
    WINDOW_CUTOFF = "window.cutoff"
    WINDOW_LABEL_AS_OF = "window.label_as_of"
    WINDOW_FOLDS = "window.folds"
    DELTA_VERSION_PREFIX = "delta_version."
    # on the version: test metrics (copies of the run's), the gate's decision, approval and promotion
    METRIC_PREFIX = "metric."
    GATE_DECISION = "gate.decision"
    GATE_REASONS = "gate.reasons"
    GATE_CHECKED_AT = "gate.checked_at"
    GATE_CHAMPION_AT_GATE = "gate.champion_at_gate"
    GATE_COMPARED_WITH = "gate.compared_with"
    APPROVED_BY = "approved_by"
    APPROVED_AT = "approved_at"
    PROMOTED_AT = "promoted_at"
    RETIRED_AT = "retired_at"
    ROLLED_BACK_AT = "rolled_back_at"
    ROLLED_BACK_BY = "rolled_back_by"
    APPROVAL = "approval"
    ARCHIVED = "archived"  # "true": retired for good; Delta maintenance no longer keeps the versions it pinned
    ARCHIVED_BY = "archived_by"
    ARCHIVED_AT = "archived_at"
    REJECTED_BY = "rejected_by"
    REJECTED_AT = "rejected_at"
    # deployment (deploy_model): the outcome on the version
    DEPLOYED_AT = "deploy.deployed_at"
    DEPLOY_ROLLED_BACK_AT = "deploy.rolled_back_at"
    DEPLOY_ROLLBACK_REASON = "deploy.rollback_reason"
    # on nested trial runs
    STOPPED_EARLY = "stopped_early"

    @staticmethod
    def delta_version(table: str) -> str:
        return f"{Tag.DELTA_VERSION_PREFIX}{table}"

    @staticmethod
    def metric(name: str) -> str:
        return f"{Tag.METRIC_PREFIX}{name}"


class Metric:
    """Metric keys logged on the training run (and copied as ``metric.<key>`` tags to the version)."""

    TUNING = "average_precision"  # what the tuner maximises, per step of every trial
    TUNE_BEST = "tune_best_average_precision"
    TUNE_SECONDS = "tune_seconds"
    TUNE_STOPPED_EARLY = "tune_trials_stopped_early"
    FIT_SECONDS = "fit_seconds"
    TEST_AUC = "test_auc"
    TEST_AP = "test_average_precision"
    TEST_BRIER = "test_brier"
    TEST_NET_SAVINGS = "test_net_savings"
    BASELINE_AUC = "baseline_auc"
    BASELINE_AP = "baseline_average_precision"
    ROBUSTNESS_PASSED = "robustness_passed"
    FLAGGED_SLICES = "flagged_slices"
    FEATURES_NOT_HELPING = "features_not_helping"  # permutation importance on the folds not above the floor
    # the score at or above which serving and batch scoring alert: chosen on the test window so that
    # alerts per day match the review budget k (jobs.evaluation.metrics.alert_threshold)
    ALERT_THRESHOLD = "alert_threshold"

    @staticmethod
    def test_card_precision(k: int) -> str:
        return f"test_card_precision_at_{k}"


NO_CHAMPION = "none"  # the value of gate.champion_at_gate when there was no champion


def mlflow_client(settings: Settings):
    """A client on the configured store (tracking = registry); also sets MLflow's global URIs."""
    import mlflow

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:"):
        settings.storage.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(settings: Settings) -> str:
    """The experiment named after the model; with the embedded store its artifacts live under data/mlflow."""
    client = mlflow_client(settings)
    exp = client.get_experiment_by_name(settings.mlflow.model_name)
    if exp is not None:
        return exp.experiment_id
    location = (settings.storage.mlflow_dir / "artifacts").as_uri() if not settings.mlflow.tracking_uri else None
    return client.create_experiment(settings.mlflow.model_name, artifact_location=location)


def mlflow_artifact_url(settings: Settings, run_id: str, path: str) -> str:
    """A run's artifact in the MLflow UI (``PIPELINE_MLFLOW_UI_URL``)."""
    return f"{settings.mlflow.ui_url.rstrip('/')}/get-artifact?run_uuid={run_id}&path={path}"


def mlflow_links(settings: Settings, run_id: str, experiment_id: str | None = None) -> dict[str, str]:
    """Links into the MLflow UI (``PIPELINE_MLFLOW_UI_URL``) for a training run: the run, its
    evaluation report and its model card."""
    ui = settings.mlflow.ui_url.rstrip("/")
    run = f"{ui}/#/experiments/{experiment_id}/runs/{run_id}" if experiment_id else f"{ui}/#/runs/{run_id}"
    return {
        "run": run,
        "evaluation": mlflow_artifact_url(settings, run_id, "evaluation/evaluation.html"),
        "model_card": mlflow_artifact_url(settings, run_id, "model_card/model_card.html"),
    }
