"""What a reviewer reads: the evaluation report as JSON, a self-contained HTML page and PNG plots."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve


def plot_report(
    report: dict, frame: pd.DataFrame, scores, out_dir: Path, importance: dict[str, float] | None = None
) -> list[Path]:
    """ROC, precision-recall, calibration, slice bars and feature importance as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    y, s = frame["label"].to_numpy(), np.asarray(scores, dtype=float)
    paths = []

    def save(fig, name):
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)

    fpr, tpr, _ = roc_curve(y, s)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(fpr, tpr, label=f"AUC {report['overall']['auc']:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend()
    save(fig, "roc.png")

    precision, recall, _ = precision_recall_curve(y, s)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision, label=f"AP {report['overall']['average_precision']:.3f}")
    ax.axhline(report["fraud_rate"], linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend()
    save(fig, "precision_recall.png")

    rel = report["calibration"]["reliability"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([r["mean_predicted"] for r in rel], [r["fraction_fraud"] for r in rel], "o-")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(
        xlabel="mean predicted",
        ylabel="fraction fraud",
        title=f"Reliability (Brier {report['calibration']['brier']:.4f})",
    )
    save(fig, "calibration.png")

    sl = [x for x in report["slices"] if x["auc"] is not None]
    fig, ax = plt.subplots(figsize=(6, max(3, 0.25 * len(sl))))
    ax.barh(
        [f"{x['slice']}={x['value']} (n={x['support']})" for x in sl],
        [x["auc"] for x in sl],
        color=["tab:red" if x["flagged"] else "tab:blue" for x in sl],
    )
    ax.axvline(report["overall"]["auc"], color="black", linestyle="--")
    ax.set(xlabel="AUC", title="AUC by slice (red: flagged)", xlim=(0.5, 1.0))
    save(fig, "slices.png")

    if importance:
        items = sorted(importance.items(), key=lambda kv: kv[1])
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.barh([k for k, _ in items], [v for _, v in items])
        ax.set(xlabel="total gain", title="Feature importance")
        save(fig, "feature_importance.png")
    return paths


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4f}" if not math.isnan(v) else ""
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def feature_worth(report: dict) -> list[dict]:
    """One row per feature: split-gain share, benefit (permutation AP drop on the folds) and cost (feature job).

    Sorted by benefit, largest first; features without a benefit (no usable fold) last.
    """
    gains = report.get("feature_importance", {})
    total = sum(gains.values()) or 1.0
    benefit = (report.get("feature_benefit") or {}).get("features", {})
    cost = (report.get("feature_cost") or {}).get("features", {})
    rows = [
        {
            "feature": name,
            "gain_share": gains.get(name, 0.0) / total,
            "ap_drop_mean": benefit.get(name, {}).get("ap_drop_mean"),
            "ap_drop_std": benefit.get(name, {}).get("ap_drop_std"),
            "helps": benefit.get(name, {}).get("helps"),
            "seconds_alone": cost.get(name, {}).get("seconds_alone"),
            "attributed_seconds": cost.get(name, {}).get("attributed_seconds"),
        }
        for name in gains or benefit
    ]
    return sorted(rows, key=lambda r: (r["ap_drop_mean"] is None, -(r["ap_drop_mean"] or 0.0)))


def render_html(title: str, report: dict, comparisons: dict[str, dict] | None = None) -> str:
    """A self-contained HTML page of an evaluation report (``comparisons``: other models' overall)."""
    overall = [{"model": "this model", **report["overall"]}]
    for name, other in (comparisons or {}).items():
        overall.append({"model": name, **other})
    parts = [
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{report['rows']} test transactions, {report['frauds']} frauds.</p>",
        "<h2>Overall</h2>",
        _table(overall, ["model", "auc", "average_precision", "card_precision_at_k"]),
        "<h2>Cost view</h2>",
        _table([report["cost"]], list(report["cost"])),
        "<h2>Calibration</h2>",
        f"<p>Brier score {report['calibration']['brier']:.5f}</p>",
        _table(report["calibration"]["reliability"], ["mean_predicted", "fraction_fraud", "count"]),
        "<h2>Slices</h2>",
        _table(report["slices"], ["slice", "value", "support", "frauds", "auc", "average_precision", "flagged"]),
        "<h2>By day</h2>",
        f"<p>Average-precision trend: {report['temporal']['average_precision_trend_per_day']} per day</p>",
        _table(report["temporal"]["per_day"], ["day", "rows", "frauds", "auc", "average_precision"]),
    ]
    if report.get("parity"):
        parts.append("<h2>Fairness: alert rate and false-positive rate by customer group</h2>")
        for grouping, p in sorted(report["parity"].items()):
            parts += [
                f"<p>{html.escape(grouping)}: alert-rate gap {p['alert_rate_gap']}, "
                f"false-positive-rate gap {p['false_positive_rate_gap']}</p>",
                _table(
                    p["groups"],
                    [
                        "value",
                        "rows",
                        "alerts",
                        "alert_rate",
                        "false_positives",
                        "false_positive_rate",
                        "enough_support",
                    ],
                ),
            ]
    if report.get("feature_benefit"):
        cost = report.get("feature_cost")
        measured = (
            f"cost measured on {cost['day']} ({cost['rows']} transactions, all features {cost['seconds_all_features']:.2f} s)"
            if cost
            else "cost not measured yet (python -m jobs.features.cost)"
        )
        parts += [
            "<h2>Features: benefit and cost</h2>",
            f"<p>Benefit: {html.escape(report['feature_benefit']['method'])}; "
            f"not helping: {html.escape(', '.join(report['feature_benefit']['not_helping']) or 'none')}. "
            f"{html.escape(measured)}.</p>",
            _table(
                feature_worth(report),
                [
                    "feature",
                    "gain_share",
                    "ap_drop_mean",
                    "ap_drop_std",
                    "helps",
                    "seconds_alone",
                    "attributed_seconds",
                ],
            ),
        ]
    if "robustness" in report:
        parts += [
            "<h2>Robustness</h2>",
            _table(report["robustness"], ["name", "kind", "description", "value", "threshold", "passed"]),
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: dict, out_dir: Path, title: str, comparisons: dict | None = None) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, page = out_dir / REPORT_FILE, out_dir / PAGE_FILE
    js.write_text(json.dumps(report, indent=2, default=str))
    page.write_text(render_html(title, report, comparisons))
    return js, page


# ------------------------------------------------------------------------------------------
# the files of one evaluation (written by training, read by the gate and the model card)

EVALUATION_DIR = "evaluation"  # under a training run's folder, and the artifact path on its MLflow run
REPORT_FILE = "evaluation.json"
PAGE_FILE = "evaluation.html"
TEST_FRAME_FILE = "test_frame.parquet"


def write_test_frame(frame: pd.DataFrame, out_dir: Path) -> Path:
    """The test rows the report was computed on (labels, features, slice columns): the gate re-scores the champion on them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TEST_FRAME_FILE
    frame.to_parquet(path, index=False)
    return path


def read_test_frame(out_dir: Path) -> pd.DataFrame:
    frame = pd.read_parquet(out_dir / TEST_FRAME_FILE)
    frame["tx_date"] = pd.to_datetime(frame["tx_date"]).dt.date
    return frame


def read_report(out_dir: Path) -> dict:
    return json.loads((out_dir / REPORT_FILE).read_text())
