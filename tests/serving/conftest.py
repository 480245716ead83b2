"""A champion, an online store and a running scoring service over the shared simulated history.

The champion is a real LightGBM booster trained on the history's features and registered in an MLflow
store of its own (so the training tests' registry is untouched), with the tags serving checks: the
feature-set version and an alert threshold. The service is a real ``python -m serving`` process
(BentoML, HTTP on a free port) on the history's data dir, its online store materialized as of the
day before the replayed day.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pytest
from service_proc import start_service

from jobs.config import get_settings

from replay import REPLAY_DAY

TRAIN_DAYS = (date(2025, 3, 1), date(2025, 3, 8))


@pytest.fixture(scope="module")
def serving_settings(history, tmp_path_factory):
    """Settings of the serving tests: the history's data dir, an MLflow store of their own.

    Module-scoped: the variable is set for this module's tests only (batch_score's dag.test() reads
    it in this process), so the training tests in the same worker keep their own registry.
    """
    uri = f"sqlite:///{tmp_path_factory.mktemp('serving-mlflow') / 'mlflow.db'}"
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["PIPELINE_TEST_SERVING_MLFLOW"] = uri
    get_settings.cache_clear()
    yield get_settings()
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    get_settings.cache_clear()
    from jobs.platform.tracking import mlflow_client

    mlflow_client(get_settings())  # point MLflow's globals back at the session's store


@pytest.fixture(scope="module")
def champion(serving_settings):
    """A LightGBM booster trained on the history's first eight days, registered and aliased champion."""
    import lightgbm as lgb
    import mlflow
    from deltalake import DeltaTable

    from jobs.evaluation.metrics import alert_threshold
    from jobs.evaluation.profile import REFERENCE_FILE, build_reference
    from jobs.evaluation.report import EVALUATION_DIR
    from jobs.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
    from jobs.platform import delta
    from jobs.platform.tracking import Alias, Metric, Tag, experiment_id, mlflow_client
    from jobs.release.decisions import GateDecision

    s = serving_settings
    feats = (
        DeltaTable(str(delta.path(s, "features.transaction_features")))
        .to_pyarrow_table(filters=[("batch_date", ">=", TRAIN_DAYS[0]), ("batch_date", "<=", TRAIN_DAYS[1])])
        .to_pandas()
    )
    fct = DeltaTable(str(delta.path(s, "marts.fct_transactions"))).to_pyarrow_table(
        columns=["transaction_id", "report_known_at", "tx_date"]
    )
    frame = feats.merge(fct.to_pandas(), on="transaction_id")
    y = frame["report_known_at"].notna().astype(int).to_numpy()
    X = frame[list(FEATURE_NAMES)].astype("float64")
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 8, "min_data_in_leaf": 5, "verbosity": -1, "seed": 1},
        lgb.Dataset(X, y),
        num_boost_round=20,
    )
    threshold = alert_threshold(frame, booster.predict(X), k=10)["threshold"]
    client = mlflow_client(s)
    name = s.mlflow.model_name
    with mlflow.start_run(experiment_id=experiment_id(s)) as run:
        info = mlflow.lightgbm.log_model(booster, name="model", pip_requirements=["lightgbm"])
        # the monitoring reference, as the evaluation logs it with every trained version
        reference = build_reference(X, booster.predict(X), threshold, FEATURE_NAMES)
        mlflow.log_dict(reference, f"{EVALUATION_DIR}/{REFERENCE_FILE}")
    client.create_registered_model(name)
    mv = client.create_model_version(
        name,
        info.model_uri,
        run_id=run.info.run_id,
        model_id=info.model_id,
        tags={
            Tag.FEATURE_SET_VERSION: FEATURE_SET_VERSION,
            Tag.metric(Metric.ALERT_THRESHOLD): f"{threshold:.6f}",
            Tag.GATE_DECISION: GateDecision.PASSED,
            Tag.GATE_REASONS: '["every check passed <as the fixture says>"]',
        },
    )
    client.set_registered_model_alias(name, Alias.CHAMPION, mv.version)
    return {
        "version": str(mv.version),
        "threshold": float(f"{threshold:.6f}"),
        "booster": booster,
        "run_id": run.info.run_id,
    }


@pytest.fixture(scope="module")
def online_store(serving_settings, spark):
    """The online store as of the end of the day before ``REPLAY_DAY`` (state written by the feature job)."""
    from jobs.features.build import _write_state
    from jobs.features.store import materialize_online

    _write_state(spark, REPLAY_DAY - timedelta(days=1), serving_settings.features.label_delay_days)
    return materialize_online(REPLAY_DAY - timedelta(days=1), serving_settings)


@pytest.fixture(scope="module")
def service(champion, online_store, tmp_path_factory):
    svc = start_service(tmp_path_factory.mktemp("service"))
    yield svc
    svc.stop()
