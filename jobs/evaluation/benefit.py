"""What each feature is worth: permutation importance on the validation folds, next to its cost.

:func:`permutation_benefit` refits the chosen configuration on each tuning fold's training window
(``fit``, the training stage's own), then, on that fold's validation window, shuffles one feature at a
time and records how much average precision drops: the model's loss without the information, on data
it never saw (the split gain on the training rows, which the card also shows, is not that). A feature
whose mean drop is not above ``min_drop`` is flagged as **not helping**: a candidate to drop, which
saves its cost in the feature job (:func:`jobs.features.cost.latest_costs`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import average_precision_score

from jobs.features.registry import FEATURE_NAMES, features_matrix


def permutation_benefit(folds, fit: Callable, n_repeats: int, seed: int, min_drop: float) -> dict:
    """Per feature: mean and spread of the AP drop when it is shuffled, over folds x repeats."""
    rng = np.random.default_rng(seed)
    drops: dict[str, list[float]] = {name: [] for name in FEATURE_NAMES}
    base_aps = []
    for fold in folds:
        y = fold.evaluate["label"].to_numpy()
        if y.min() == y.max():
            continue
        booster = fit(fold.train)
        X = features_matrix(fold.evaluate).to_numpy(copy=True)
        base = float(average_precision_score(y, booster.predict(X)))
        base_aps.append(base)
        for j, name in enumerate(FEATURE_NAMES):
            original = X[:, j].copy()
            for _ in range(n_repeats):
                X[:, j] = rng.permutation(original)
                drops[name].append(base - float(average_precision_score(y, booster.predict(X))))
            X[:, j] = original
    features = {}
    for name, values in drops.items():
        mean = float(np.mean(values)) if values else None
        features[name] = {
            "ap_drop_mean": mean,
            "ap_drop_std": float(np.std(values)) if values else None,
            "helps": None if mean is None else mean > min_drop,
        }
    return {
        "method": "permutation importance on the validation folds (average-precision drop)",
        "folds": len(base_aps),
        "repeats": n_repeats,
        "base_average_precision": base_aps,
        "min_drop": min_drop,
        "features": features,
        "not_helping": sorted(n for n, f in features.items() if f["helps"] is False),
    }
