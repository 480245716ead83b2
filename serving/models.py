"""The model versions a service process holds, and which one answers.

Versions are kept by number; the serving one answers and every answer names the version that
produced it, so more than one version can be loaded at once (the deployment strategies build on this).
"""

from __future__ import annotations

import numpy as np

from jobs.config import Settings
from jobs.scoring.model import ScoringModel, load_scoring_model


class ModelSet:
    def __init__(self, settings: Settings) -> None:
        model = load_scoring_model(settings=settings)
        self.models: dict[str, ScoringModel] = {model.version: model}
        self.serving = model.version

    @property
    def current(self) -> ScoringModel:
        return self.models[self.serving]

    def score(self, matrix: np.ndarray) -> tuple[np.ndarray, ScoringModel]:
        """Scores of the rows of ``matrix`` by the serving version, and that version."""
        model = self.current
        return model.predict(matrix), model

    def describe(self) -> dict:
        return {"serving": self.serving, "versions": {v: m.describe() for v, m in self.models.items()}}
