"""Ray Tune with ASHA versus a plain sequential loop, on the same search budget.

    python bench/train.py [--trials 16] [--days 60] [--customers 2000] [--concurrency 2]

Both search the space of ``jobs/conf/training.yaml`` with Optuna's TPE sampler (same seed, same
start point) on the same prequential folds (7-day train, 7-day gap, 7-day validation, 3 folds of a
simulated history from ``bench/simdata.py``), with the same trial function
(:func:`jobs.train.fold_trainable`):

* **sequential**: a Python loop, one trial after another, every trial boosted to ``max_steps``;
* **Ray Tune + ASHA**: ``--concurrency`` trials at a time, ASHA stopping the weak ones early;
* **Ray Tune, no ASHA** (FIFO): the same concurrency without early stopping, to separate the two effects.

Printed: wall time, trials per minute, the best validation AP and the time at which each run first
reached its own best score, with ratios against the sequential loop.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from simdata import label_as_of, simulated_frame  # noqa: E402


def optuna_space(cfg: dict) -> dict:
    """The YAML search space as Optuna distributions (Ray's randint upper bound is exclusive)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, spec in cfg["search_space"].items():
        ((kind, args),) = spec.items()
        if kind == "randint":
            out[name] = IntDistribution(args[0], args[1] - 1)
        elif kind == "uniform":
            out[name] = FloatDistribution(args[0], args[1])
        elif kind == "loguniform":
            out[name] = FloatDistribution(args[0], args[1], log=True)
        elif kind == "choice":
            out[name] = CategoricalDistribution(args)
        else:
            raise ValueError(f"unsupported search-space kind {kind}")
    return out


def sequential(folds, cfg: dict, n_trials: int, seed: int) -> dict:
    import optuna

    from jobs.training.context import fixed_params
    from jobs.training.tune import METRIC, _fold_arrays, fold_trainable

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(cfg["start_point"])
    space = optuna_space(cfg)
    arrays = _fold_arrays(folds)
    best, best_at = -1.0, None
    t0 = time.time()
    for _ in range(n_trials):
        trial = study.ask(space)
        history = []
        fold_trainable(
            trial.params,
            folds=arrays,
            fixed=fixed_params(cfg),
            rounds_per_step=cfg["rounds_per_step"],
            max_steps=cfg["max_steps"],
            seed=seed,
            report=lambda m, history=history: history.append((m[METRIC], time.time() - t0)),
        )
        top = max(history)
        study.tell(trial, top[0])
        if top[0] > best:
            best, best_at = top
    return {"wall_s": time.time() - t0, "best": best, "best_at_s": best_at}


def ray_run(folds, settings, cfg: dict, n_trials: int, concurrency: int, asha: bool, out: Path) -> dict:
    from jobs.training.tune import tune_model

    name = f"bench-{'asha' if asha else 'fifo'}-{int(time.time())}"
    best, trials, wall = tune_model(folds, settings, cfg, n_trials, concurrency, out, name, use_asha=asha)
    stopped = sum(t["stopped_early"] for t in trials)
    first_best = min(t["best_at_s"] for t in trials if t["best_ap"] == best["best_ap"])
    return {"wall_s": wall, "best": best["best_ap"], "best_at_s": first_best, "stopped_early": stopped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--skip-fifo", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-train")
    args = parser.parse_args()

    import os

    os.environ.setdefault("PIPELINE_DATA_DIR", str(args.out / "data"))
    from datetime import timedelta

    from jobs.config import get_settings, load_training_config
    from jobs.training.dataset import plan_windows, split
    from jobs.training.tune import ray_init

    settings = get_settings()
    cfg = load_training_config(settings)
    frame = simulated_frame(date(2026, 1, 1), args.days, args.customers, args.customers * 2, settings.training.seed)
    last = max(frame["tx_date"]) - timedelta(days=settings.data.label_maturity_days)
    plan = plan_windows(last, 7, 7, 7, 3, label_as_of=label_as_of(frame))
    _, folds = split(frame, plan, settings.data.label_maturity_days)
    rows = sum(len(f.train) for f in folds)
    print(
        f"{args.trials} trials, {len(folds)} folds ({rows:,} training rows in all), up to {cfg['max_steps']} steps of "
        f"{cfg['rounds_per_step']} rounds; {os.cpu_count()} cores",
        flush=True,
    )

    t = time.time()
    ray_init(settings)
    print(f"ray.init: {time.time() - t:.1f} s (not counted below)", flush=True)
    results = {"sequential loop": sequential(folds, cfg, args.trials, settings.training.seed)}
    print(f"sequential done in {results['sequential loop']['wall_s']:.0f} s", flush=True)
    results[f"Ray Tune + ASHA (x{args.concurrency})"] = ray_run(
        folds, settings, cfg, args.trials, args.concurrency, True, args.out / "ray"
    )
    if not args.skip_fifo:
        results[f"Ray Tune, FIFO (x{args.concurrency})"] = ray_run(
            folds, settings, cfg, args.trials, args.concurrency, False, args.out / "ray"
        )

    base = results["sequential loop"]
    print(
        f"\n{'run':<26} {'wall s':>8} {'trials/min':>11} {'best AP':>8} {'to best s':>10} {'speed-up':>9} {'to-best ratio':>14} {'stopped early':>14}"
    )
    for name, r in results.items():
        print(
            f"{name:<26} {r['wall_s']:>8.1f} {args.trials / r['wall_s'] * 60:>11.2f} {r['best']:>8.4f} {r['best_at_s']:>10.1f} "
            f"{base['wall_s'] / r['wall_s']:>8.2f}x {base['best_at_s'] / max(r['best_at_s'], 1e-9):>13.2f}x {r.get('stopped_early', 0):>14}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
