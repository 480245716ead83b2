"""Fixtures for tests that need no Spark: a private MLflow store."""

from __future__ import annotations

import pytest


@pytest.fixture
def mlflow_settings(settings, tmp_path):
    """Settings whose MLflow store (tracking and registry) is a fresh SQLite file under tmp_path."""
    from jobs.platform.tracking import mlflow_client

    s = settings.override(storage={"data_dir": tmp_path / "data"}, gate={"min_auc": 0.5, "min_ap": 0.05})
    mlflow_client(s)
    yield s
    mlflow_client(settings)  # back to the session's store for the tests that follow
