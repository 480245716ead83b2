"""The stage context that passes between training tasks, and the lineage it records.

``ctx`` is a small dict (the run folder, the MLflow parent run, the best configuration, the model
URI, ...) returned by each stage and handed to the next, so a stage can run in its own process and
be retried. It is also written to ``ctx.json`` in the run folder: a retried ``build`` stage reads it
back to reuse the pinned Delta versions and the MLflow run of its first attempt.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from jobs.config import REPO_ROOT, Settings

CTX_FILE = "ctx.json"
MODEL_FILE = "model.txt"  # the final booster, saved next to the training set
# the settings that shape a model besides the data and the YAML (part of the config hash)
_HASHED_SETTINGS = {
    "train_days": lambda s: s.training.train_days,
    "gap_days": lambda s: s.training.gap_days,
    "test_days": lambda s: s.training.test_days,
    "tune_folds": lambda s: s.training.tune_folds,
    "tune_trials": lambda s: s.training.tune_trials,
    "tune_concurrency": lambda s: s.training.tune_concurrency,
    "seed": lambda s: s.training.seed,
    "label_maturity_days": lambda s: s.data.label_maturity_days,
}


def run_dir_for(settings: Settings, key: str) -> Path:
    """The folder of one training (``key`` = the Airflow run id, or a CLI timestamp)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return settings.storage.training_dir / safe


def save_ctx(ctx: dict) -> None:
    """Write the stage state next to the training set (what a retried task reads back)."""
    Path(ctx["run_dir"], CTX_FILE).write_text(json.dumps(ctx, indent=2))


def load_ctx(run_dir: Path) -> dict | None:
    path = run_dir / CTX_FILE
    return json.loads(path.read_text()) if path.exists() else None


def load_booster(ctx: dict):
    """The final booster of a training run, from its run folder."""
    import lightgbm as lgb

    return lgb.Booster(model_file=str(Path(ctx["run_dir"], MODEL_FILE)))


def monotone_constraints(cfg: dict) -> dict[str, int]:
    """The training config's ``monotone_constraints`` (feature -> 1 or -1), checked, without the free ones.

    A training config without the key (one recorded before it existed) has none.
    """
    from jobs.features.registry import FEATURE_NAMES

    declared = cfg.get("monotone_constraints") or {}
    unknown = sorted(set(declared) - set(FEATURE_NAMES))
    if unknown:
        raise ValueError(f"monotone_constraints: not model features: {', '.join(unknown)}")
    bad = {name: d for name, d in declared.items() if d not in (-1, 0, 1)}
    if bad:
        raise ValueError(f"monotone_constraints: directions must be 1, -1 or 0: {bad}")
    return {name: int(d) for name, d in declared.items() if d}


def fixed_params(cfg: dict) -> dict:
    """The LightGBM parameters every fit shares: the YAML's ``fixed_params``, and its
    :func:`monotone_constraints` as LightGBM's per-feature list, in registry order."""
    from jobs.features.registry import FEATURE_NAMES

    params = dict(cfg["fixed_params"])
    constrained = monotone_constraints(cfg)
    if constrained:
        params["monotone_constraints"] = [constrained.get(name, 0) for name in FEATURE_NAMES]
    return params


def fit_final(train, cfg: dict, config: dict, rounds: int, seed: int):
    """The booster of one configuration on ``train`` (the final fit, the benefit folds, ``reproduce``)."""
    import lightgbm as lgb

    from jobs.features.registry import features_matrix

    params = {**fixed_params(cfg), **config, "seed": seed}
    data = lgb.Dataset(features_matrix(train), train["label"].to_numpy(), params={"verbosity": -1})
    return lgb.train(params, data, num_boost_round=rounds)


def config_hash(cfg: dict, settings: Settings, extra: dict | None = None) -> str:
    """Hash of everything that shapes a model besides the data: the YAML, windows, trials, seed."""
    hashed = {name: get(settings) for name, get in _HASHED_SETTINGS.items()}
    blob = json.dumps({"config": cfg, "settings": hashed, **(extra or {})}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_commit() -> str:
    """The repository's HEAD, with ``-dirty`` when tracked files have uncommitted changes."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
