"""Training: Ray Tune over LightGBM on prequential folds, the final model, MLflow tracking.

The stages below are what the ``train_model`` DAG runs, one task each; state passes between them
as a small dict (``ctx``: the run folder, the MLflow parent run, the model URI, the version), so a
task can run in its own process and be retried. ``python -m jobs.train`` runs them all in a row.

1. :func:`stage_build` pins the Delta versions, writes the training set and opens the MLflow
   parent run with the lineage tags (git commit, Delta versions, dbt manifest hash, feature-set
   version, windows, config hash).
2. :func:`stage_tune` runs Ray Tune (Optuna's TPE searcher, ASHA early stopping) and records every
   trial as a nested MLflow run.
3. :func:`stage_train` fits the final booster with the best configuration on the training window
   and logs it (LightGBM flavour, signature, input example, explicit pip requirements).
4. :func:`stage_evaluate` evaluates it on the test window (:mod:`jobs.evaluation`) next to the
   logistic-regression baseline, runs the robustness tests, and logs the report and the plots.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from jobs.config import REPO_ROOT, Settings, get_settings
from jobs.feature_registry import FEATURE_NAMES, FEATURE_SET_VERSION

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

METRIC = "average_precision"


# ------------------------------------------------------------------------------------------
# configuration and lineage


def load_config(settings: Settings) -> dict:
    return yaml.safe_load(Path(settings.training_config).read_text())


def config_hash(cfg: dict, settings: Settings, extra: dict | None = None) -> str:
    """Hash of everything that shapes a model besides the data: the YAML, windows, trials, seed."""
    keys = ("train_days", "gap_days", "test_days", "tune_folds", "tune_trials", "tune_concurrency", "seed", "label_maturity_days")
    blob = json.dumps({"config": cfg, "settings": {k: getattr(settings, k) for k in keys}, **(extra or {})}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def features_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input: every registry feature as float64 (so a missing value is representable)."""
    return frame[list(FEATURE_NAMES)].astype("float64")


# ------------------------------------------------------------------------------------------
# MLflow


def mlflow_client(settings: Settings):
    import mlflow

    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("sqlite:"):
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(settings: Settings) -> str:
    """The experiment named after the model; with the embedded store its artifacts live under data/mlflow."""
    client = mlflow_client(settings)
    exp = client.get_experiment_by_name(settings.model_name)
    if exp is not None:
        return exp.experiment_id
    location = (settings.mlflow_dir / "artifacts").as_uri() if not settings.mlflow_tracking_uri else None
    return client.create_experiment(settings.model_name, artifact_location=location)


# ------------------------------------------------------------------------------------------
# Ray


def ray_init(settings: Settings) -> None:
    """Local Ray (no dashboard, token under the data dir, not $HOME) unless RAY_ADDRESS names a cluster."""
    import ray

    if ray.is_initialized():
        return
    if settings.ray_address:
        # the cluster's workers get this package shipped with the job (trainables are pickled by reference)
        ray.init(address=settings.ray_address, log_to_driver=True, runtime_env={"py_modules": [str(REPO_ROOT / "jobs")]})
        return
    token = settings.ray_dir / "auth_token"
    if not token.exists():
        token.parent.mkdir(parents=True, exist_ok=True)
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    ray.init(
        num_cpus=settings.ray_num_cpus or os.cpu_count(),
        include_dashboard=False,
        log_to_driver=True,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT), "RAY_AUTH_TOKEN_PATH": str(token)}},
    )


def _space(cfg: dict) -> dict:
    from ray import tune

    space = {}
    for name, spec in cfg["search_space"].items():
        (kind, args), = spec.items()
        space[name] = tune.choice(args) if kind == "choice" else getattr(tune, kind)(*args)
    return space


def _fold_arrays(folds) -> list[tuple]:
    return [
        (features_matrix(f.train).to_numpy(), f.train["label"].to_numpy(), features_matrix(f.evaluate).to_numpy(), f.evaluate["label"].to_numpy())
        for f in folds
    ]


def fold_trainable(config: dict, folds=None, fixed=None, rounds_per_step=25, max_steps=12, seed=0, report=None):
    """One trial: boost every fold in lockstep; after each step report the mean validation AP."""
    import lightgbm as lgb
    from sklearn.metrics import average_precision_score

    if report is None:
        from ray import tune

        report = tune.report
    params = {**fixed, **config, "seed": seed}
    # One booster per fold, updated round by round: the same random streams (bagging, feature
    # fraction) as a one-shot lgb.train of the same number of rounds, which fit_final does.
    boosters = [lgb.Booster(params=params, train_set=lgb.Dataset(xt, yt, params={"verbosity": -1})) for xt, yt, _, _ in folds]
    for step in range(1, max_steps + 1):
        aps = []
        for booster, (_, _, xv, yv) in zip(boosters, folds):
            for _ in range(rounds_per_step):
                booster.update()
            aps.append(float(average_precision_score(yv, booster.predict(xv))))
        report({METRIC: float(np.mean(aps)), "rounds": step * rounds_per_step, **{f"{METRIC}_fold{i}": a for i, a in enumerate(aps)}})


def tune_model(folds, settings: Settings, cfg: dict, n_trials: int, concurrency: int, storage: Path, name: str, use_asha: bool = True):
    """Run the search; return (best config, best AP, best rounds, per-trial summaries)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    ray_init(settings)
    start = {k: v for k, v in cfg.get("start_point", {}).items() if k in cfg["search_space"]}
    searcher = OptunaSearch(metric=METRIC, mode="max", seed=settings.seed, points_to_evaluate=[start] if start else None)
    scheduler = (
        ASHAScheduler(time_attr="training_iteration", max_t=cfg["max_steps"], grace_period=cfg["asha"]["grace_period"],
                      reduction_factor=cfg["asha"]["reduction_factor"])
        if use_asha else FIFOScheduler()
    )
    trainable = tune.with_resources(
        tune.with_parameters(fold_trainable, folds=_fold_arrays(folds), fixed=cfg["fixed_params"],
                             rounds_per_step=cfg["rounds_per_step"], max_steps=cfg["max_steps"], seed=settings.seed),
        {"cpu": 1},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=_space(cfg),
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=searcher, scheduler=scheduler,
                                    num_samples=n_trials, max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=1,
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
    )
    t0 = time.time()
    grid = tuner.fit()
    trials = []
    for r in grid:
        if r.error:
            raise RuntimeError(f"trial {r.path} failed: {r.error}")
        hist = r.metrics_dataframe
        best_i = int(hist[METRIC].to_numpy().argmax())
        trials.append({
            "trial_id": r.metrics.get("trial_id"), "config": {k: r.config[k] for k in sorted(r.config)},
            "steps": int(len(hist)), "best_ap": float(hist[METRIC].iloc[best_i]), "best_rounds": int(hist["rounds"].iloc[best_i]),
            "history": [float(v) for v in hist[METRIC]],
            "best_at_s": float(hist["timestamp"].iloc[best_i] - t0) if "timestamp" in hist else None,
            "stopped_early": int(len(hist)) < cfg["max_steps"],
        })
    trials.sort(key=lambda t: t["trial_id"] or "")
    best = max(trials, key=lambda t: (t["best_ap"], -t["best_rounds"]))
    return best, trials, time.time() - t0


# ------------------------------------------------------------------------------------------
# stages


def run_dir_for(settings: Settings, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return settings.training_dir / safe


def stage_build(key: str, settings: Settings | None = None, last_test_day: date | None = None, train_days: int | None = None,
                gap_days: int | None = None, test_days: int | None = None, n_folds: int | None = None,
                n_trials: int | None = None, versions: dict | None = None) -> dict:
    """Training set + MLflow parent run with the lineage tags.

    A retry of the same ``key`` (Airflow run id) rebuilds the set from the Delta versions pinned by
    the first attempt and reuses its MLflow run, so a retried task neither drifts nor duplicates.
    """
    from jobs.training_data import MANIFEST_FILE, build_training_set
    from jobs.transform import manifest_hash

    settings = settings or get_settings()
    run_dir = run_dir_for(settings, key)
    previous = _load_ctx(run_dir)
    if previous and (run_dir / MANIFEST_FILE).exists():
        versions = versions or json.loads((run_dir / MANIFEST_FILE).read_text())["delta_versions"]
        build_training_set(run_dir, settings, last_test_day, train_days, gap_days, test_days, n_folds, versions)
        if mlflow_client(settings).get_run(previous["parent_run_id"]):
            log.info("retry of %s: reusing MLflow run %s and the pinned versions %s", key, previous["parent_run_id"], versions)
            keep = ("key", "run_dir", "parent_run_id", "n_trials", "config_hash")
            ctx = {k: previous[k] for k in keep}
            save_ctx(ctx)
            return ctx
    manifest = build_training_set(run_dir, settings, last_test_day, train_days, gap_days, test_days, n_folds, versions)
    cfg = load_config(settings)
    n_trials = n_trials or settings.tune_trials
    chash = config_hash(cfg, settings, {"windows": manifest["windows"], "n_trials": n_trials})
    client = mlflow_client(settings)
    w = manifest["windows"]
    tags = {
        "mlflow.runName": f"train {w['test']}",
        "git_commit": git_commit(),
        "feature_set_version": FEATURE_SET_VERSION,
        "dbt_manifest_hash": manifest_hash(settings),
        "config_hash": chash,
        "training_key": key,
        "data.frame_hash": manifest["frame_hash"],
        "window.train": w["train"], "window.gap_days": str(w["gap_days"]), "window.test": w["test"],
        "window.cutoff": w["cutoff"], "window.label_as_of": w["label_as_of"],
        "window.folds": json.dumps(w["folds"]),
        **{f"delta_version.{t}": str(v) for t, v in manifest["delta_versions"].items()},
    }
    run = client.create_run(experiment_id(settings), tags=tags)
    client.log_batch(run.info.run_id, params=[_param(k, v) for k, v in {
        "train_days": len_days(w["train"]), "gap_days": w["gap_days"], "test_days": len_days(w["test"]),
        "n_folds": len(w["folds"]), "n_trials": n_trials, "seed": settings.seed, "label_maturity_days": settings.label_maturity_days,
        "rows_train": manifest["rows"]["train"], "rows_test": manifest["rows"]["test"],
    }.items()])
    client.log_dict(run.info.run_id, manifest, "training_set/manifest.json")
    ctx = {"key": key, "run_dir": str(run_dir), "parent_run_id": run.info.run_id, "n_trials": n_trials, "config_hash": chash}
    save_ctx(ctx)
    return ctx


def len_days(span: str) -> int:
    a, b = span.split("..")
    return (date.fromisoformat(b) - date.fromisoformat(a)).days + 1


def _param(k, v):
    from mlflow.entities import Param

    return Param(k, str(v))


def save_ctx(ctx: dict) -> None:
    """Write the stage state next to the training set (what a retried task reads back)."""
    Path(ctx["run_dir"], "ctx.json").write_text(json.dumps(ctx, indent=2))


def _load_ctx(run_dir: Path) -> dict | None:
    path = run_dir / "ctx.json"
    return json.loads(path.read_text()) if path.exists() else None


def stage_tune(ctx: dict, settings: Settings | None = None, concurrency: int | None = None) -> dict:
    """Ray Tune on the folds; every trial becomes a nested MLflow run; the best goes into ctx."""
    from mlflow.entities import Metric

    from jobs.training_data import load_training_set

    settings = settings or get_settings()
    _, _, _, folds = load_training_set(Path(ctx["run_dir"]))
    cfg = load_config(settings)
    best, trials, seconds = tune_model(folds, settings, cfg, ctx["n_trials"], concurrency or settings.tune_concurrency,
                                       Path(ctx["run_dir"]) / "ray", name="tune")
    client = mlflow_client(settings)
    exp = experiment_id(settings)
    now = int(time.time() * 1000)
    for old in client.search_runs([exp], f"tags.mlflow.parentRunId = '{ctx['parent_run_id']}'"):
        client.delete_run(old.info.run_id)  # a retried tuning replaces the trials of the failed attempt
    for i, t in enumerate(trials):
        run = client.create_run(exp, tags={"mlflow.parentRunId": ctx["parent_run_id"], "mlflow.runName": f"trial {i:02d}",
                                           "stopped_early": str(t["stopped_early"]).lower()})
        client.log_batch(run.info.run_id,
                         metrics=[Metric(METRIC, v, now, step) for step, v in enumerate(t["history"], 1)]
                         + [Metric(f"best_{METRIC}", t["best_ap"], now, 0), Metric("best_rounds", t["best_rounds"], now, 0)],
                         params=[_param(k, v) for k, v in t["config"].items()])
        client.set_terminated(run.info.run_id)
    logged = client.get_run(ctx["parent_run_id"]).data.params
    params = {**{f"best.{k}": v for k, v in best["config"].items()}, "best.rounds": best["best_rounds"]}
    client.log_batch(ctx["parent_run_id"],
                     metrics=[Metric(f"tune_best_{METRIC}", best["best_ap"], now, 0), Metric("tune_seconds", seconds, now, 0),
                              Metric("tune_trials_stopped_early", sum(t["stopped_early"] for t in trials), now, 0)],
                     params=[_param(k, v) for k, v in params.items() if k not in logged])  # MLflow params are write-once
    Path(ctx["run_dir"], "tune.json").write_text(json.dumps({"best": best, "trials": trials, "seconds": seconds}, indent=2))
    ctx = {**ctx, "best_config": best["config"], "best_rounds": best["best_rounds"], "tune_best_ap": best["best_ap"]}
    save_ctx(ctx)
    log.info("tuning: best %s = %.4f at %d rounds, %d trials in %.0f s", METRIC, best["best_ap"], best["best_rounds"], len(trials), seconds)
    return ctx


def fit_final(train: pd.DataFrame, cfg: dict, config: dict, rounds: int, seed: int):
    import lightgbm as lgb

    params = {**cfg["fixed_params"], **config, "seed": seed}
    data = lgb.Dataset(features_matrix(train), train["label"].to_numpy(), params={"verbosity": -1})
    return lgb.train(params, data, num_boost_round=rounds)


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn", "scipy")]


def stage_train(ctx: dict, settings: Settings | None = None) -> dict:
    """Fit the final booster with the best configuration; log it to the parent run."""
    import mlflow
    from mlflow.models import infer_signature

    from jobs.training_data import load_training_set

    settings = settings or get_settings()
    _, _, main, _ = load_training_set(Path(ctx["run_dir"]))
    cfg = load_config(settings)
    t0 = time.time()
    booster = fit_final(main.train, cfg, ctx["best_config"], ctx["best_rounds"], settings.seed)
    fit_s = time.time() - t0
    X = features_matrix(main.evaluate)
    booster.save_model(str(Path(ctx["run_dir"], "model.txt")))
    mlflow_client(settings)
    with mlflow.start_run(run_id=ctx["parent_run_id"]):
        info = mlflow.lightgbm.log_model(
            booster, name="model", signature=infer_signature(X.head(50), booster.predict(X.head(50))),
            input_example=X.head(3), pip_requirements=pip_requirements(),
        )
        mlflow.log_metric("fit_seconds", fit_s)
    ctx = {**ctx, "model_uri": info.model_uri, "model_id": info.model_id}
    save_ctx(ctx)
    return ctx


def load_booster(ctx: dict):
    import lightgbm as lgb

    return lgb.Booster(model_file=str(Path(ctx["run_dir"], "model.txt")))


def importance(booster) -> dict[str, float]:
    gains = booster.feature_importance(importance_type="gain")
    return {n: float(g) for n, g in zip(FEATURE_NAMES, gains)}


def stage_evaluate(ctx: dict, settings: Settings | None = None) -> dict:
    """Evaluate the model and the baseline on the test window; log report, HTML and plots."""
    from jobs import evaluation as ev
    from jobs.training_data import load_training_set

    settings = settings or get_settings()
    _, _, main, _ = load_training_set(Path(ctx["run_dir"]))
    cfg = load_config(settings)
    booster = load_booster(ctx)
    predict = lambda X: booster.predict(features_matrix(X))
    test = main.evaluate
    scores = predict(test)
    report = ev.evaluate(test, scores, cfg, settings.slice_margin)
    report["robustness"] = ev.robustness(predict, features_matrix(test), cfg, settings.seed)
    baseline = ev.fit_baseline(main.train, settings.seed)
    base_report = ev.evaluate(test, baseline(test), cfg, settings.slice_margin)
    report["baseline"] = base_report["overall"]
    report["beats_baseline"] = bool((report["overall"]["average_precision"] or 0) > (base_report["overall"]["average_precision"] or 0))
    report["feature_importance"] = importance(booster)
    out = Path(ctx["run_dir"], "evaluation")
    js, page = ev.write_report(report, out, f"{settings.model_name}: test window", {"logistic-regression baseline": base_report["overall"]})
    plots = ev.plot_report(report, ev.add_slice_columns(test, cfg["evaluation"]["amount_buckets"]), scores, out / "plots", report["feature_importance"])
    client = mlflow_client(settings)
    o = report["overall"]
    metrics = {"test_auc": o["auc"], "test_average_precision": o["average_precision"], f"test_card_precision_at_{o['k']}": o["card_precision_at_k"],
               "test_brier": report["calibration"]["brier"], "baseline_average_precision": report["baseline"]["average_precision"],
               "baseline_auc": report["baseline"]["auc"], "test_net_savings": report["cost"]["net_savings"],
               "robustness_passed": float(all(t["passed"] for t in report["robustness"])), "flagged_slices": float(len(report["flagged_slices"]))}
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(ctx["parent_run_id"], metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None])
    client.log_artifact(ctx["parent_run_id"], str(js), "evaluation")
    client.log_artifact(ctx["parent_run_id"], str(page), "evaluation")
    for p in plots:
        client.log_artifact(ctx["parent_run_id"], str(p), "evaluation/plots")
    ctx = {**ctx, "metrics": {k: v for k, v in metrics.items() if v is not None}}
    save_ctx(ctx)
    log.info("evaluation: %s", json.dumps(ctx["metrics"]))
    return ctx


def train_all(key: str, settings: Settings | None = None, **build_args) -> dict:
    """Every stage in a row (no registry): what ``python -m jobs.train`` and the benchmarks run."""
    settings = settings or get_settings()
    ctx = stage_build(key, settings, **build_args)
    ctx = stage_tune(ctx, settings)
    ctx = stage_train(ctx, settings)
    return stage_evaluate(ctx, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.train", description="Tune, train and evaluate once (then register with jobs.registry).")
    parser.add_argument("--last-test-day", type=date.fromisoformat)
    parser.add_argument("--train-days", type=int)
    parser.add_argument("--gap-days", type=int)
    parser.add_argument("--test-days", type=int)
    parser.add_argument("--folds", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--register", action="store_true", help="also register the model as challenger and run the gate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = "cli-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    try:
        ctx = train_all(key, last_test_day=args.last_test_day, train_days=args.train_days, gap_days=args.gap_days,
                        test_days=args.test_days, n_folds=args.folds, n_trials=args.trials)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.register:
        from jobs.registry import gate, register_challenger

        ctx = gate(register_challenger(ctx))
    print(json.dumps(ctx, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
