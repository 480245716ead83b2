"""Model quality on a long simulated history, for the 7/7/7 protocol and the project default.

    python bench/quality.py [--days 120] [--customers 5000] [--terminals 10000] [--trials 20] [--weeks 4]

The frame comes from ``bench/simdata.py`` (simulator + the feature reference that equals the Spark
job); everything after that is the training code the DAG runs: the same splits
(:func:`jobs.training_data.split`), Ray Tune with ASHA on the prequential folds, the final
LightGBM fit, :func:`jobs.evaluation.evaluate` and the logistic-regression baseline.

For each protocol, hyperparameters are tuned once, on the folds before the **earliest** test week,
then a model is fitted and tested for each of ``--weeks`` consecutive test weeks ending on the last
day whose labels are mature (so no tuning fold overlaps any test week). Printed per week and as
mean ± sd: AUC, average precision and Card Precision@100, next to the published baselines of the
fraud-detection handbook for this simulator design (AUC ~0.87, AP 0.66-0.69, CP@100 0.29-0.30).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from simdata import label_as_of, simulated_frame  # noqa: E402

PROTOCOLS = {"7/7/7": dict(train_days=7, gap_days=7, test_days=7), "default 21/7/7": dict(train_days=21, gap_days=7, test_days=7)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-quality")
    args = parser.parse_args()

    import os

    os.environ.setdefault("PIPELINE_DATA_DIR", str(args.out / "data"))
    from jobs import evaluation as ev
    from jobs.config import get_settings
    from jobs.train import fit_final, features_matrix, load_config, tune_model
    from jobs.training_data import plan_windows, split

    settings = get_settings()
    cfg = load_config(settings)
    t0 = time.time()
    frame = simulated_frame(date(2026, 1, 1), args.days, args.customers, args.terminals, args.seed, settings.feature_label_delay_days)
    as_of = label_as_of(frame)
    last_mature = max(frame["tx_date"]) - timedelta(days=settings.label_maturity_days)
    print(f"simulated {len(frame):,} transactions over {args.days} days ({args.customers} customers, {args.terminals} terminals), "
          f"fraud rate {frame['tx_fraud'].mean():.4f}, in {time.time() - t0:.0f} s", flush=True)

    summary = {}
    for name, windows in PROTOCOLS.items():
        weeks = [last_mature - timedelta(days=7 * i) for i in range(args.weeks)][::-1]
        plan0 = plan_windows(weeks[0], n_folds=args.folds, label_as_of=as_of, **windows)
        _, folds = split(frame, plan0, settings.label_maturity_days)
        t = time.time()
        best, trials, tune_s = tune_model(folds, settings, cfg, args.trials, args.concurrency, args.out / "ray", name.replace("/", "-").replace(" ", "_"))
        print(f"\n== {name}: tuned on folds before {plan0.main.evaluate.start} ({args.trials} trials, {tune_s:.0f} s): "
              f"validation AP {best['best_ap']:.4f}, {best['best_rounds']} rounds, {json.dumps(best['config'])}", flush=True)
        rows = []
        for last in weeks:
            plan = plan_windows(last, n_folds=0, label_as_of=as_of, **windows)
            main_split, _ = split(frame, plan, settings.label_maturity_days)
            booster = fit_final(main_split.train, cfg, best["config"], best["best_rounds"], settings.seed)
            test = main_split.evaluate
            model = ev.evaluate(test, booster.predict(features_matrix(test)), cfg, settings.slice_margin)["overall"]
            base = ev.evaluate(test, ev.fit_baseline(main_split.train, settings.seed)(test), cfg, settings.slice_margin)["overall"]
            rows.append({"test": f"{plan.main.evaluate.start}..{plan.main.evaluate.end}", "train_rows": len(main_split.train),
                         "test_rows": len(test), "test_frauds": int(test["label"].sum()), "model": model, "baseline": base})
            print(f"  test {rows[-1]['test']}: {len(test):,} rows, {rows[-1]['test_frauds']} frauds | LightGBM AUC {model['auc']:.4f} "
                  f"AP {model['average_precision']:.4f} CP@100 {model['card_precision_at_k']:.3f} | logistic baseline AUC {base['auc']:.4f} "
                  f"AP {base['average_precision']:.4f} CP@100 {base['card_precision_at_k']:.3f}", flush=True)
        agg = {}
        for who in ("model", "baseline"):
            for metric in ("auc", "average_precision", "card_precision_at_k"):
                values = [r[who][metric] for r in rows]
                agg[f"{who}.{metric}"] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        summary[name] = {"weeks": rows, "mean_sd": agg, "tune": {"best": best, "seconds": tune_s}, "seconds": time.time() - t}
        print(f"  mean ± sd over {len(rows)} weeks: LightGBM AUC {agg['model.auc'][0]:.4f} ± {agg['model.auc'][1]:.4f}, "
              f"AP {agg['model.average_precision'][0]:.4f} ± {agg['model.average_precision'][1]:.4f}, "
              f"CP@100 {agg['model.card_precision_at_k'][0]:.3f} ± {agg['model.card_precision_at_k'][1]:.3f} "
              f"(baseline AUC {agg['baseline.auc'][0]:.4f}, AP {agg['baseline.average_precision'][0]:.4f}, "
              f"CP@100 {agg['baseline.card_precision_at_k'][0]:.3f})", flush=True)
    print("\npublished handbook baselines (7/7/7): AUC ~0.87, AP 0.66-0.69, CP@100 0.29-0.30")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"details: {args.out / 'quality.json'}; total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
