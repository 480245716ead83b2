"""Hyperparameter search: Ray Tune (Optuna's TPE searcher, ASHA early stopping) over LightGBM.

A trial boosts one booster per prequential fold, round by round, and reports the mean validation
average precision after every step; ASHA stops the weak trials early and the best step fixes the
number of boosting rounds of the final fit. The search space, steps and ASHA settings live in
``jobs/conf/training.yaml``. Ray is local by default (no dashboard, its auth token under the data
directory); ``RAY_ADDRESS`` points the same code at a cluster.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path

import numpy as np

from jobs.config import REPO_ROOT, Settings, get_settings, load_training_config
from jobs.features.registry import features_matrix
from jobs.platform.tracking import Metric, Tag, experiment_id, mlflow_client
from jobs.training.context import fixed_params, save_ctx

log = logging.getLogger(__name__)

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

METRIC = Metric.TUNING


def ray_init(settings: Settings) -> None:
    """Local Ray (no dashboard, token under the data dir, not $HOME) unless RAY_ADDRESS names a cluster."""
    import ray

    if ray.is_initialized():
        return
    if settings.ray.address:
        # the cluster's workers get this package shipped with the job (trainables are pickled by reference)
        ray.init(
            address=settings.ray.address, log_to_driver=True, runtime_env={"py_modules": [str(REPO_ROOT / "jobs")]}
        )
        return
    token = settings.storage.ray_dir / "auth_token"
    if not token.exists():
        token.parent.mkdir(parents=True, exist_ok=True)
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    ray.init(
        num_cpus=settings.ray.num_cpus or os.cpu_count(),
        include_dashboard=False,
        log_to_driver=True,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT), "RAY_AUTH_TOKEN_PATH": str(token)}},
    )


def _space(cfg: dict) -> dict:
    from ray import tune

    space = {}
    for name, spec in cfg["search_space"].items():
        ((kind, args),) = spec.items()
        space[name] = tune.choice(args) if kind == "choice" else getattr(tune, kind)(*args)
    return space


def _fold_arrays(folds) -> list[tuple]:
    return [
        (
            features_matrix(f.train).to_numpy(),
            f.train["label"].to_numpy(),
            features_matrix(f.evaluate).to_numpy(),
            f.evaluate["label"].to_numpy(),
        )
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
    # fraction) as a one-shot lgb.train of the same number of rounds, which the final fit does.
    boosters = [
        lgb.Booster(params=params, train_set=lgb.Dataset(xt, yt, params={"verbosity": -1})) for xt, yt, _, _ in folds
    ]
    for step in range(1, max_steps + 1):
        aps = []
        for booster, (_, _, xv, yv) in zip(boosters, folds, strict=True):
            for _ in range(rounds_per_step):
                booster.update()
            aps.append(float(average_precision_score(yv, booster.predict(xv))))
        report(
            {
                METRIC: float(np.mean(aps)),
                "rounds": step * rounds_per_step,
                **{f"{METRIC}_fold{i}": a for i, a in enumerate(aps)},
            }
        )


def tune_model(
    folds,
    settings: Settings,
    cfg: dict,
    n_trials: int,
    concurrency: int,
    storage: Path,
    name: str,
    use_asha: bool = True,
):
    """Run the search; return (best trial, per-trial summaries, seconds)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    ray_init(settings)
    seed = settings.training.seed
    start = {k: v for k, v in cfg.get("start_point", {}).items() if k in cfg["search_space"]}
    searcher = OptunaSearch(metric=METRIC, mode="max", seed=seed, points_to_evaluate=[start] if start else None)
    scheduler = (
        ASHAScheduler(
            time_attr="training_iteration",
            max_t=cfg["max_steps"],
            grace_period=cfg["asha"]["grace_period"],
            reduction_factor=cfg["asha"]["reduction_factor"],
        )
        if use_asha
        else FIFOScheduler()
    )
    trainable = tune.with_resources(
        tune.with_parameters(
            fold_trainable,
            folds=_fold_arrays(folds),
            fixed=fixed_params(cfg),
            rounds_per_step=cfg["rounds_per_step"],
            max_steps=cfg["max_steps"],
            seed=seed,
        ),
        {"cpu": 1},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=_space(cfg),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=n_trials,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            verbose=1,
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
        ),
    )
    t0 = time.time()
    grid = tuner.fit()
    trials = []
    for r in grid:
        if r.error:
            raise RuntimeError(f"trial {r.path} failed: {r.error}")
        hist = r.metrics_dataframe
        best_i = int(hist[METRIC].to_numpy().argmax())
        trials.append(
            {
                "trial_id": r.metrics.get("trial_id"),
                "config": {k: r.config[k] for k in sorted(r.config)},
                "steps": int(len(hist)),
                "best_ap": float(hist[METRIC].iloc[best_i]),
                "best_rounds": int(hist["rounds"].iloc[best_i]),
                "history": [float(v) for v in hist[METRIC]],
                "best_at_s": float(hist["timestamp"].iloc[best_i] - t0) if "timestamp" in hist else None,
                "stopped_early": int(len(hist)) < cfg["max_steps"],
            }
        )
    trials.sort(key=lambda t: t["trial_id"] or "")
    best = max(trials, key=lambda t: (t["best_ap"], -t["best_rounds"]))
    return best, trials, time.time() - t0


def _param(k, v):
    from mlflow.entities import Param

    return Param(k, str(v))


def stage_tune(ctx: dict, settings: Settings | None = None, concurrency: int | None = None) -> dict:
    """Ray Tune on the folds; every trial becomes a nested MLflow run; the best goes into ctx."""
    from mlflow.entities import Metric as MlflowMetric

    from jobs.training.dataset import load_training_set

    settings = settings or get_settings()
    _, _, _, folds = load_training_set(Path(ctx["run_dir"]))
    cfg = load_training_config(settings)
    best, trials, seconds = tune_model(
        folds,
        settings,
        cfg,
        ctx["n_trials"],
        concurrency or settings.training.tune_concurrency,
        Path(ctx["run_dir"]) / "ray",
        name="tune",
    )
    client = mlflow_client(settings)
    exp = experiment_id(settings)
    now = int(time.time() * 1000)
    for old in client.search_runs([exp], f"tags.mlflow.parentRunId = '{ctx['parent_run_id']}'"):
        client.delete_run(old.info.run_id)  # a retried tuning replaces the trials of the failed attempt
    for i, t in enumerate(trials):
        run = client.create_run(
            exp,
            tags={
                "mlflow.parentRunId": ctx["parent_run_id"],
                "mlflow.runName": f"trial {i:02d}",
                Tag.STOPPED_EARLY: str(t["stopped_early"]).lower(),
            },
        )
        client.log_batch(
            run.info.run_id,
            metrics=[MlflowMetric(METRIC, v, now, step) for step, v in enumerate(t["history"], 1)]
            + [
                MlflowMetric(f"best_{METRIC}", t["best_ap"], now, 0),
                MlflowMetric("best_rounds", t["best_rounds"], now, 0),
            ],
            params=[_param(k, v) for k, v in t["config"].items()],
        )
        client.set_terminated(run.info.run_id)
    logged = client.get_run(ctx["parent_run_id"]).data.params
    params = {**{f"best.{k}": v for k, v in best["config"].items()}, "best.rounds": best["best_rounds"]}
    client.log_batch(
        ctx["parent_run_id"],
        metrics=[
            MlflowMetric(Metric.TUNE_BEST, best["best_ap"], now, 0),
            MlflowMetric(Metric.TUNE_SECONDS, seconds, now, 0),
            MlflowMetric(Metric.TUNE_STOPPED_EARLY, sum(t["stopped_early"] for t in trials), now, 0),
        ],
        params=[_param(k, v) for k, v in params.items() if k not in logged],
    )  # MLflow params are write-once
    Path(ctx["run_dir"], "tune.json").write_text(
        json.dumps({"best": best, "trials": trials, "seconds": seconds}, indent=2)
    )
    ctx = {**ctx, "best_config": best["config"], "best_rounds": best["best_rounds"], "tune_best_ap": best["best_ap"]}
    save_ctx(ctx)
    log.info(
        "tuning: best %s = %.4f at %d rounds, %d trials in %.0f s",
        METRIC,
        best["best_ap"],
        best["best_rounds"],
        len(trials),
        seconds,
    )
    return ctx
