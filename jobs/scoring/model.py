"""A registered model version ready to score: the LightGBM booster, its alert threshold, its checks.

Serving and batch scoring load the model through :func:`load_scoring_model`, so both refuse the same
versions for the same reasons: no such alias, a feature set other than the code's, no alert
threshold recorded. The booster is used directly (``Booster.predict``), not through a pyfunc wrapper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.config import Settings, get_settings
from jobs.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from jobs.platform.tracking import Alias, Metric, Tag

if TYPE_CHECKING:
    import numpy as np


class ModelNotServable(RuntimeError):
    """The requested model version cannot score; the message says why in one line."""


@dataclass
class ScoringModel:
    name: str
    version: str
    booster: object  # lightgbm.Booster
    feature_set_version: str
    alert_threshold: float
    run_id: str

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Fraud scores of the rows of ``matrix`` (columns in ``FEATURE_NAMES`` order)."""
        return self.booster.predict(matrix, num_threads=1)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Per row, each feature's contribution to the raw score (SHAP values), then the bias: n x (features + 1)."""
        return self.booster.predict(matrix, pred_contrib=True, num_threads=1)

    def describe(self) -> dict:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "feature_set_version": self.feature_set_version,
            "alert_threshold": self.alert_threshold,
            "run_id": self.run_id,
        }


def load_scoring_model(
    alias: str | None = Alias.CHAMPION, version: str | None = None, settings: Settings | None = None
) -> ScoringModel:
    """Load ``version`` (or the version behind ``alias``) from the registry, or say in one line why not."""
    import mlflow

    from jobs.platform.tracking import mlflow_client

    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    try:
        mv = client.get_model_version(name, version) if version else client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise  # the registry is unreachable or failing: not a verdict on the version (callers retry)
        what = f"version {version}" if version else f"alias {str(alias)!r}"
        raise ModelNotServable(
            f"no {what} for model {name!r} in {redact(settings.mlflow_tracking_uri)}: train and promote a model "
            "first (train_model, or `make demo`)"
        ) from None
    fsv = mv.tags.get(Tag.FEATURE_SET_VERSION)
    if fsv != FEATURE_SET_VERSION:
        raise ModelNotServable(
            f"{name} version {mv.version} was trained on feature set {fsv}, the code computes {FEATURE_SET_VERSION}: "
            "retrain (train_model) before serving it"
        )
    threshold = mv.tags.get(Tag.metric(Metric.ALERT_THRESHOLD))
    if threshold is None:
        raise ModelNotServable(
            f"{name} version {mv.version} has no {Tag.metric(Metric.ALERT_THRESHOLD)} tag (trained before alert "
            "thresholds were recorded): retrain (train_model) before serving it"
        )
    booster = mlflow.lightgbm.load_model(f"models:/{name}/{mv.version}")
    names = list(booster.feature_name())
    if names != list(FEATURE_NAMES):
        raise ModelNotServable(f"{name} version {mv.version} takes features {names}, not {list(FEATURE_NAMES)}")
    model = ScoringModel(name, str(mv.version), booster, fsv, float(threshold), mv.run_id or "")
    check_golden(model)
    return model


def redact(uri: str) -> str:
    """``uri`` without a password or token (``scheme://user:secret@host`` -> ``scheme://***@host``)."""
    return re.sub(r"://[^/@]+@", "://***@", uri)


def golden_matrix() -> np.ndarray:
    """Feature rows every servable version must score (finite, in [0, 1]): a quiet card, a busy one, extremes.

    Not a quality test (the gate did that): a check that the booster loads, takes the code's feature
    vector and answers numbers, before a version is allowed to answer anyone.
    """
    import numpy as np

    quiet = dict.fromkeys(FEATURE_NAMES, 0.0) | {"tx_amount": 42.5, "customer_avg_amount_30d": 40.0}
    busy = dict.fromkeys(FEATURE_NAMES, 3.0) | {"tx_amount": 1500.0, "tx_during_night": 1.0}
    busy |= {name: 0.5 for name in FEATURE_NAMES if "risk" in name or "share" in name}
    rows = [quiet, busy, dict.fromkeys(FEATURE_NAMES, 0.0), dict.fromkeys(FEATURE_NAMES, 1000000.0)]
    return np.array([[row[name] for name in FEATURE_NAMES] for row in rows], dtype=np.float64)


def check_golden(model: ScoringModel) -> None:
    """Raise :class:`ModelNotServable` unless ``model`` scores the golden rows with finite numbers in [0, 1]."""
    import numpy as np

    matrix = golden_matrix()
    try:
        scores = np.asarray(model.predict(matrix), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 (whatever the booster raises, the version cannot serve)
        raise ModelNotServable(f"{model.name} version {model.version} fails on the golden rows: {exc}") from None
    if scores.shape != (len(matrix),) or not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
        raise ModelNotServable(
            f"{model.name} version {model.version} scores the golden rows {scores.tolist()}: "
            "expected one finite score in [0, 1] per row"
        )
