"""A model version's monitoring reference, read back from its MLflow run (written by the evaluation)."""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from pathlib import Path

from jobs.config import Settings, get_settings
from jobs.evaluation.profile import REFERENCE_FILE
from jobs.evaluation.report import EVALUATION_DIR
from jobs.platform.tracking import mlflow_client


class NoReference(LookupError):
    """The version has no monitoring reference (trained before monitoring existed)."""


def champion_version(settings: Settings | None = None) -> str | None:
    """The registered model's champion version, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    try:
        return mlflow_client(settings).get_model_version_by_alias(settings.mlflow.model_name, "champion").version
    except MlflowException:
        return None


def load_reference(version: str, settings: Settings | None = None) -> dict:
    """The reference profile logged with ``version``'s evaluation (:func:`jobs.evaluation.profile.build_reference`)."""
    settings = settings or get_settings()
    return _load(settings.mlflow_tracking_uri, settings.mlflow.model_name, str(version), settings)


@lru_cache(maxsize=8)
def _load(_uri: str, name: str, version: str, settings: Settings) -> dict:
    client = mlflow_client(settings)
    run_id = client.get_model_version(name, version).run_id
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"{EVALUATION_DIR}/{REFERENCE_FILE}", tmp)
        except Exception as exc:  # MLflow raises OSError or MlflowException depending on the store
            raise NoReference(f"version {version} (run {run_id}) has no {EVALUATION_DIR}/{REFERENCE_FILE}") from exc
        return json.loads(Path(path).read_text())
