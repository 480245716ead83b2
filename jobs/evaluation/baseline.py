"""The floor a model must beat: logistic regression on the same features."""

from __future__ import annotations

import pandas as pd

from jobs.features.registry import FEATURE_NAMES


def fit_baseline(train: pd.DataFrame, seed: int):
    """Logistic regression on the same features (standardised), the floor a model must beat."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(train[list(FEATURE_NAMES)].to_numpy(dtype=float), train["label"].to_numpy())
    return lambda X: model.predict_proba(X[list(FEATURE_NAMES)].to_numpy(dtype=float))[:, 1]
