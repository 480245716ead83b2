"""The evaluation stage: the final model and the baseline on the test window, beyond accuracy.

Writes the report (JSON, HTML, plots) and the scored test rows into ``<run dir>/evaluation`` and logs
them to the MLflow run with the test metrics; the gate (:mod:`jobs.release.gate`) reads both back.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from jobs.config import Settings, get_settings, load_training_config
from jobs.evaluation import baseline, benefit, metrics, report, robustness
from jobs.evaluation.profile import REFERENCE_FILE, build_reference
from jobs.features.cost import latest_costs
from jobs.features.registry import FEATURE_NAMES, features_matrix
from jobs.platform.tracking import Metric, mlflow_client
from jobs.training.context import fit_final, load_booster, monotone_constraints, save_ctx

log = logging.getLogger(__name__)

EVALUATION_DIR = report.EVALUATION_DIR


def importance(booster) -> dict[str, float]:
    gains = booster.feature_importance(importance_type="gain")
    return {n: float(g) for n, g in zip(FEATURE_NAMES, gains, strict=True)}


def test_metrics(report: dict) -> dict[str, float | None]:
    """The test-window metrics logged on the run (and compared by ``reproduce``), from an evaluation report."""
    o = report["overall"]
    return {
        Metric.TEST_AUC: o["auc"],
        Metric.TEST_AP: o["average_precision"],
        Metric.test_card_precision(o["k"]): o["card_precision_at_k"],
        Metric.TEST_BRIER: report["calibration"]["brier"],
    }


def stage_evaluate(ctx: dict, settings: Settings | None = None) -> dict:
    """Evaluate the model and the baseline on the test window; log report, HTML, plots and metrics."""
    from mlflow.entities import Metric as MlflowMetric

    from jobs.training.dataset import load_training_set

    settings = settings or get_settings()
    margin, seed = settings.gate.slice_margin, settings.training.seed
    _, _, main, folds = load_training_set(Path(ctx["run_dir"]))
    cfg = load_training_config(settings)
    booster = load_booster(ctx)

    def predict(X):
        return booster.predict(features_matrix(X))

    test = main.evaluate
    scores = predict(test)
    result = metrics.evaluate(test, scores, cfg, margin)
    result["robustness"] = robustness.on_test_window(predict, test, cfg, seed, result["alert_threshold"]["threshold"])
    base = baseline.fit_baseline(main.train, seed)
    base_report = metrics.evaluate(test, base(test), cfg, margin)
    result["baseline"] = base_report["overall"]
    result["beats_baseline"] = bool(
        (result["overall"]["average_precision"] or 0) > (base_report["overall"]["average_precision"] or 0)
    )
    result["feature_importance"] = importance(booster)
    result["monotone_constraints"] = monotone_constraints(cfg)
    worth = cfg["evaluation"]["feature_benefit"]
    result["feature_benefit"] = benefit.permutation_benefit(
        folds,
        lambda train: fit_final(train, cfg, ctx["best_config"], ctx["best_rounds"], seed),
        worth["repeats"],
        seed,
        worth["min_ap_drop"],
    )
    result["feature_cost"] = latest_costs(settings)
    out = Path(ctx["run_dir"], EVALUATION_DIR)
    js, page = report.write_report(
        result,
        out,
        f"{settings.mlflow.model_name}: test window",
        {"logistic-regression baseline": base_report["overall"]},
    )
    report.write_test_frame(test, out)
    plots = report.plot_report(
        result,
        metrics.add_slice_columns(test, cfg["evaluation"]["amount_buckets"]),
        scores,
        out / "plots",
        result["feature_importance"],
    )
    # The monitoring reference: binned training features and the test window's scores (jobs.monitoring).
    reference = build_reference(main.train, scores, result["alert_threshold"]["threshold"], FEATURE_NAMES)
    (out / REFERENCE_FILE).write_text(json.dumps(reference))
    client = mlflow_client(settings)
    logged = {
        **test_metrics(result),
        Metric.BASELINE_AP: result["baseline"]["average_precision"],
        Metric.BASELINE_AUC: result["baseline"]["auc"],
        Metric.TEST_NET_SAVINGS: result["cost"]["net_savings"],
        Metric.ROBUSTNESS_PASSED: float(all(t["passed"] for t in result["robustness"])),
        Metric.FLAGGED_SLICES: float(len(result["flagged_slices"])),
        Metric.ALERT_THRESHOLD: result["alert_threshold"]["threshold"],
        Metric.FEATURES_NOT_HELPING: float(len(result["feature_benefit"]["not_helping"])),
    }
    now = int(time.time() * 1000)
    client.log_batch(
        ctx["parent_run_id"], metrics=[MlflowMetric(k, float(v), now, 0) for k, v in logged.items() if v is not None]
    )
    client.log_artifact(ctx["parent_run_id"], str(js), EVALUATION_DIR)
    client.log_artifact(ctx["parent_run_id"], str(page), EVALUATION_DIR)
    client.log_artifact(ctx["parent_run_id"], str(out / REFERENCE_FILE), EVALUATION_DIR)
    for p in plots:
        client.log_artifact(ctx["parent_run_id"], str(p), f"{EVALUATION_DIR}/plots")
    ctx = {**ctx, "metrics": {k: v for k, v in logged.items() if v is not None}}
    save_ctx(ctx)
    log.info("evaluation: %s", json.dumps(ctx["metrics"]))
    return ctx
