"""Training: the pinned training set and its MLflow run, the final model, every stage in a row.

The stages are what the ``train_model`` DAG runs, one task each; state passes between them as a small
dict (``ctx``, :mod:`jobs.training.context`), so a task can run in its own process and be retried.

1. :func:`stage_build` pins the Delta versions, writes the training set and opens the MLflow parent
   run with the lineage tags (git commit, Delta versions, dbt manifest hash, feature-set version,
   windows, config hash).
2. :func:`jobs.training.tune.stage_tune` runs Ray Tune and records every trial as a nested run.
3. :func:`stage_train` fits the final booster with the best configuration on the training window
   and logs it (LightGBM flavour, signature, input example, explicit pip requirements).
4. :func:`jobs.training.evaluate.stage_evaluate` evaluates it on the test window.

Registration, the gate and promotion are the release's (:mod:`jobs.release`).
``python -m jobs.training.train`` runs the four stages in a row (``--register`` adds the release steps).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from jobs.config import Settings, get_settings, load_training_config
from jobs.features.registry import FEATURE_SET_VERSION, features_matrix
from jobs.platform.logs import setup_logging
from jobs.platform.tracking import Metric, Tag, experiment_id, mlflow_client
from jobs.training.context import MODEL_FILE, config_hash, fit_final, git_commit, load_ctx, run_dir_for, save_ctx

log = logging.getLogger(__name__)

TRAINING_CONFIG_ARTIFACT = "training_set/training_config.json"  # the YAML as this training read it
FINAL_FIT_ARTIFACT = "model_fit.json"  # the hyperparameters and rounds the logged model was fit with


def _param(k, v):
    from mlflow.entities import Param

    return Param(k, str(v))


def stage_build(
    key: str,
    settings: Settings | None = None,
    last_test_day: date | None = None,
    train_days: int | None = None,
    gap_days: int | None = None,
    test_days: int | None = None,
    n_folds: int | None = None,
    n_trials: int | None = None,
    versions: dict | None = None,
    trigger: str | None = None,
) -> dict:
    """Training set + MLflow parent run with the lineage tags (and ``trigger``: why this training runs).

    A retry of the same ``key`` (Airflow run id) rebuilds the set from the Delta versions pinned by
    the first attempt and reuses its MLflow run, so a retried task neither drifts nor duplicates.
    """
    from jobs.platform.dbt_runner import manifest_hash
    from jobs.training.dataset import MANIFEST_FILE, build_training_set

    settings = settings or get_settings()
    run_dir = run_dir_for(settings, key)
    previous = load_ctx(run_dir)
    if previous and (run_dir / MANIFEST_FILE).exists():
        versions = versions or json.loads((run_dir / MANIFEST_FILE).read_text())["delta_versions"]
        build_training_set(run_dir, settings, last_test_day, train_days, gap_days, test_days, n_folds, versions)
        if mlflow_client(settings).get_run(previous["parent_run_id"]):
            log.info(
                "retry of %s: reusing MLflow run %s and the pinned versions %s",
                key,
                previous["parent_run_id"],
                versions,
            )
            keep = ("key", "run_dir", "parent_run_id", "n_trials", "config_hash")
            ctx = {k: previous[k] for k in keep}
            save_ctx(ctx)
            return ctx
    manifest = build_training_set(run_dir, settings, last_test_day, train_days, gap_days, test_days, n_folds, versions)
    cfg = load_training_config(settings)
    n_trials = n_trials or settings.training.tune_trials
    chash = config_hash(cfg, settings, {"windows": manifest["windows"], "n_trials": n_trials})
    client = mlflow_client(settings)
    w = manifest["windows"]
    tags = {
        "mlflow.runName": f"train {w['test']}",
        Tag.GIT_COMMIT: git_commit(),
        Tag.FEATURE_SET_VERSION: FEATURE_SET_VERSION,
        Tag.DBT_MANIFEST_HASH: manifest_hash(settings),
        Tag.CONFIG_HASH: chash,
        Tag.TRAINING_KEY: key,
        Tag.TRAINING_TRIGGER: (trigger or "manual")[:5000],
        Tag.FRAME_HASH: manifest["frame_hash"],
        Tag.WINDOW_TRAIN: w["train"],
        Tag.WINDOW_GAP_DAYS: str(w["gap_days"]),
        Tag.WINDOW_TEST: w["test"],
        Tag.WINDOW_CUTOFF: w["cutoff"],
        Tag.WINDOW_LABEL_AS_OF: w["label_as_of"],
        Tag.WINDOW_FOLDS: json.dumps(w["folds"]),
        **{Tag.delta_version(t): str(v) for t, v in manifest["delta_versions"].items()},
    }
    run = client.create_run(experiment_id(settings), tags=tags)
    plan = manifest["plan"]["main"]
    client.log_batch(
        run.info.run_id,
        params=[
            _param(k, v)
            for k, v in {
                "train_days": _days(plan["train"]),
                "gap_days": w["gap_days"],
                "test_days": _days(plan["evaluate"]),
                "n_folds": len(w["folds"]),
                "n_trials": n_trials,
                "seed": settings.training.seed,
                "label_maturity_days": settings.data.label_maturity_days,
                "rows_train": manifest["rows"]["train"],
                "rows_test": manifest["rows"]["test"],
            }.items()
        ],
    )
    client.log_dict(run.info.run_id, manifest, "training_set/manifest.json")
    client.log_dict(run.info.run_id, cfg, TRAINING_CONFIG_ARTIFACT)  # what `reproduce` refits with
    ctx = {
        "key": key,
        "run_dir": str(run_dir),
        "parent_run_id": run.info.run_id,
        "n_trials": n_trials,
        "config_hash": chash,
    }
    save_ctx(ctx)
    return ctx


def _days(window: list[str]) -> int:
    """Length in days of a ``[start, end]`` window (both inclusive) of the stored plan."""
    return (date.fromisoformat(window[1]) - date.fromisoformat(window[0])).days + 1


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model (given explicitly: inferring them costs seconds)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn", "scipy")]


def stage_train(ctx: dict, settings: Settings | None = None) -> dict:
    """Fit the final booster with the best configuration; log it to the parent run."""
    import mlflow
    from mlflow.models import infer_signature

    from jobs.training.dataset import load_training_set

    settings = settings or get_settings()
    _, _, main, _ = load_training_set(Path(ctx["run_dir"]))
    cfg = load_training_config(settings)
    t0 = time.time()
    booster = fit_final(main.train, cfg, ctx["best_config"], ctx["best_rounds"], settings.training.seed)
    fit_s = time.time() - t0
    X = features_matrix(main.evaluate)
    booster.save_model(str(Path(ctx["run_dir"], MODEL_FILE)))
    mlflow_client(settings)
    with mlflow.start_run(run_id=ctx["parent_run_id"]):
        info = mlflow.lightgbm.log_model(
            booster,
            name="model",
            signature=infer_signature(X.head(50), booster.predict(X.head(50))),
            input_example=X.head(3),
            pip_requirements=pip_requirements(),
        )
        mlflow.log_metric(Metric.FIT_SECONDS, fit_s)
        # the configuration this model was fit with (a retried tune may choose another: the params keep the first)
        mlflow.log_dict({"best_config": ctx["best_config"], "best_rounds": ctx["best_rounds"]}, FINAL_FIT_ARTIFACT)
    ctx = {**ctx, "model_uri": info.model_uri, "model_id": info.model_id}
    save_ctx(ctx)
    return ctx


def train_all(key: str, settings: Settings | None = None, **build_args) -> dict:
    """Every stage in a row (no registry): what ``python -m jobs.training.train`` and the benchmarks run."""
    from jobs.training.evaluate import stage_evaluate
    from jobs.training.tune import stage_tune

    settings = settings or get_settings()
    ctx = stage_build(key, settings, **build_args)
    ctx = stage_tune(ctx, settings)
    ctx = stage_train(ctx, settings)
    return stage_evaluate(ctx, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.training.train",
        description="Tune, train and evaluate once (then register with jobs.release.registry).",
    )
    parser.add_argument("--last-test-day", type=date.fromisoformat)
    parser.add_argument("--train-days", type=int)
    parser.add_argument("--gap-days", type=int)
    parser.add_argument("--test-days", type=int)
    parser.add_argument("--folds", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument(
        "--register", action="store_true", help="also register the model as challenger and run the gate"
    )
    args = parser.parse_args(argv)
    setup_logging()
    key = "cli-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    try:
        ctx = train_all(
            key,
            last_test_day=args.last_test_day,
            train_days=args.train_days,
            gap_days=args.gap_days,
            test_days=args.test_days,
            n_folds=args.folds,
            n_trials=args.trials,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.register:
        from jobs.release.gate import gate
        from jobs.release.registry import register_challenger

        ctx = gate(register_challenger(ctx))
    print(json.dumps(ctx, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
