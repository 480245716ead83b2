"""Fixtures for tests that need no Spark: a private MLflow store."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory):
    """An empty MLflow store with its schema created: a copy costs milliseconds, creating one about a second."""
    import mlflow

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def mlflow_settings(settings, tmp_path, mlflow_store_template):
    """Settings whose MLflow store (tracking and registry) is a fresh SQLite file under tmp_path."""
    from jobs.platform.tracking import mlflow_client

    s = settings.override(storage={"data_dir": tmp_path / "data"}, gate={"min_auc": 0.5, "min_ap": 0.05})
    if not s.mlflow.tracking_uri:  # the embedded store under the data dir (not a store named by MLFLOW_TRACKING_URI)
        s.storage.mlflow_dir.mkdir(parents=True)
        shutil.copyfile(mlflow_store_template, s.storage.mlflow_dir / "mlflow.db")
        assert s.mlflow_tracking_uri == f"sqlite:///{s.storage.mlflow_dir / 'mlflow.db'}"
    mlflow_client(s)
    yield s
    mlflow_client(settings)  # back to the session's store for the tests that follow
