"""The monotone constraints on kept training sets: each refit with and without them, side by side.

    python bench/constraints.py --keep DIR    # DIR: a `bench/drift_scenario.py --keep` work dir

For every training the scenario ran (``DIR/data/training/*``, in order), the run's own tuned
configuration and rounds are refit on its training window three ways: without constraints, with
those of ``jobs/conf/training.yaml``, and with every terminal known-fraud feature constrained as
well (the counts rising, the days since the last known fraud falling). Printed per refit: AUC,
average precision and Card Precision@100 on the run's test window, and the two directional tests as
the gate runs them (share of the genuine transactions below the alert threshold whose score does
not drop; pass: 0.95). The numbers in ``bench/README.md`` ("Directional constraints") come from here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def variants(cfg: dict) -> dict[str, dict]:
    from jobs.features.registry import FEATURE_NAMES

    every_terminal = {n: 1 for n in FEATURE_NAMES if n.startswith(("terminal_risk_", "terminal_known_fraud_"))}
    every_terminal["terminal_days_since_known_fraud"] = -1
    return {
        "none": {**cfg, "monotone_constraints": {}},
        "training.yaml": cfg,
        "every terminal known-fraud feature": {**cfg, "monotone_constraints": every_terminal},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, required=True, help="a drift_scenario.py --keep work dir")
    args = parser.parse_args()

    import os

    os.environ.setdefault("PIPELINE_DATA_DIR", str(args.keep / "data"))
    from sklearn.metrics import roc_auc_score

    from jobs.config import get_settings, load_training_config
    from jobs.evaluation import metrics
    from jobs.evaluation.robustness import on_test_window
    from jobs.features.registry import features_matrix
    from jobs.training.context import fit_final
    from jobs.training.dataset import load_training_set

    settings = get_settings()
    cfg = load_training_config(settings)
    runs = sorted(p.parent for p in (args.keep / "data" / "training").glob("*/ctx.json"))
    if not runs:
        parser.error(f"no training runs under {args.keep / 'data' / 'training'}")
    print("| training | test window | constraints | AUC | AP | CP@100 | extreme amount | compromised terminal |")
    print("|---|---|---|---|---|---|---|---|")
    for n, run in enumerate(runs, start=1):
        ctx = json.loads((run / "ctx.json").read_text())
        if "best_config" not in ctx:
            continue  # a training that stopped before tuning ended
        manifest, _, main_split, _ = load_training_set(run)
        test, y = main_split.evaluate, main_split.evaluate["label"].to_numpy()
        X = features_matrix(test)
        for name, vcfg in variants(cfg).items():
            booster = fit_final(main_split.train, vcfg, ctx["best_config"], ctx["best_rounds"], settings.training.seed)
            scores = booster.predict(X)
            report = metrics.evaluate(test, scores, vcfg, settings.gate.slice_margin)
            tests = {
                t["name"]: t["value"]
                for t in on_test_window(
                    lambda frame, b=booster: b.predict(features_matrix(frame)),
                    test,
                    vcfg,
                    settings.training.seed,
                    report["alert_threshold"]["threshold"],
                )
            }
            o = report["overall"]
            print(
                f"| #{n} | {manifest['windows']['test']} | {name} | {roc_auc_score(y, scores):.3f} "
                f"| {o['average_precision']:.3f} | {o['card_precision_at_k']:.3f} "
                f"| {tests['extreme_amount_not_less_suspicious']:.4f} "
                f"| {tests['compromised_terminal_not_less_suspicious']:.4f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
