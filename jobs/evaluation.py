"""Evaluation beyond accuracy: ranking, business, calibration, slices, time, robustness.

Everything here works on a scored test frame (one row per transaction with ``label``, ``tx_date``,
``customer_id``, ``tx_amount``, the features and the slice columns) and returns plain dicts, so
the report is JSON; :func:`render_html` and :func:`plot_report` turn it into what a reviewer reads.
Used by training (:mod:`jobs.train`), by the promotion gate (:mod:`jobs.registry`) and by the
monitoring DAGs to come.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score, roc_curve

from jobs.feature_registry import FEATURE_NAMES

SLICES = ("segment", "region", "merchant_category", "amount_bucket", "night", "weekend")


def _safe(metric, y, s) -> float | None:
    y = np.asarray(y)
    if len(y) == 0 or y.min() == y.max():
        return None
    return float(metric(y, s))


def threshold_free(y, s) -> dict:
    return {"auc": _safe(roc_auc_score, y, s), "average_precision": _safe(average_precision_score, y, s)}


def _daily_alerts(frame: pd.DataFrame, scores, k: int):
    """Per day, in order: the day's rows and the ``k`` cards alerted, as the handbook's Card Precision@k.

    Cards already known to be compromised (a report before that day, column
    ``card_first_reported_at`` if present) and cards detected on earlier days are dropped; each card
    is scored by its highest transaction score that day.
    """
    df = pd.DataFrame({"day": frame["tx_date"].to_numpy(), "card": frame["customer_id"].to_numpy(),
                       "label": frame["label"].to_numpy(), "score": np.asarray(scores, dtype=float),
                       "amount": frame["tx_amount"].to_numpy() if "tx_amount" in frame else np.zeros(len(frame))})
    if "card_first_reported_at" in frame:
        first = pd.to_datetime(frame["card_first_reported_at"]).to_numpy()
        day_start = pd.to_datetime(df["day"]).to_numpy()
        df = df[~(~pd.isna(first) & (first < day_start))]
    detected: set = set()
    for day in sorted(df["day"].unique()):
        today = df[(df["day"] == day) & ~df["card"].isin(detected)]
        cards = today.groupby("card").agg(score=("score", "max"), label=("label", "max"))
        top = cards.sort_values(["score"], ascending=False, kind="mergesort").head(k)
        hits = set(top.index[top["label"] == 1])
        yield day, today, list(top.index), hits
        detected.update(hits)


def card_precision_at_k(frame: pd.DataFrame, scores, k: int = 100) -> dict:
    """Card Precision@k as in the fraud-detection handbook, with the days in order.

    Per day (see :func:`_daily_alerts`) the share of the top ``k`` cards with a fraud that day,
    over ``k`` as the handbook does; returned: the mean over days, the per-day values and the
    number of cards detected.
    """
    per_day, detected = {}, 0
    for day, _, _, hits in _daily_alerts(frame, scores, k):
        per_day[str(day)] = len(hits) / k
        detected += len(hits)
    mean = float(np.mean(list(per_day.values()))) if per_day else None
    return {"k": k, "mean": mean, "per_day": per_day, "detected_cards": detected}


def cost_view(frame: pd.DataFrame, scores, k: int, review_cost: float) -> dict:
    """The same daily alerts: fraud amount on the alerted cards that day versus the cost of the reviews."""
    caught = alerts = 0.0
    total = 0.0
    for _, today, top, _ in _daily_alerts(frame, scores, k):
        alerts += len(top)
        frauds = today[today["label"] == 1]
        total += float(frauds["amount"].sum())
        caught += float(frauds.loc[frauds["card"].isin(top), "amount"].sum())
    cost = alerts * review_cost
    return {
        "alerts": int(alerts), "review_cost_per_alert": review_cost, "review_cost": round(cost, 2),
        "fraud_amount": round(total, 2), "fraud_amount_caught": round(caught, 2), "fraud_amount_missed": round(total - caught, 2),
        "net_savings": round(caught - cost, 2), "share_of_fraud_amount_caught": round(caught / total, 4) if total else None,
    }


def calibration(y, s, bins: int = 10) -> dict:
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    edges = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, max(len(edges) - 2, 0))
    curve = []
    for b in np.unique(which):
        m = which == b
        curve.append({"mean_predicted": float(s[m].mean()), "fraction_fraud": float(y[m].mean()), "count": int(m.sum())})
    return {"brier": float(brier_score_loss(y, s)), "base_rate": float(y.mean()), "reliability": curve}


def add_slice_columns(frame: pd.DataFrame, amount_buckets: list[float]) -> pd.DataFrame:
    out = frame.copy()
    edges = list(amount_buckets)
    labels = [f"{edges[i]:g}-{edges[i + 1]:g}" if i + 2 < len(edges) else f">={edges[i]:g}" for i in range(len(edges) - 1)]
    out["amount_bucket"] = pd.cut(out["tx_amount"], edges, labels=labels, right=False).astype(str)
    out["night"] = np.where(out["tx_during_night"] == 1, "night", "day")
    out["weekend"] = np.where(out["tx_during_weekend"] == 1, "weekend", "weekday")
    return out


def slices(frame: pd.DataFrame, scores, overall_auc: float | None, margin: float, min_frauds: int) -> list[dict]:
    """Each slice value with its support and metrics; ``flagged`` if its AUC is ``margin`` below overall."""
    s = np.asarray(scores, dtype=float)
    out = []
    for column in SLICES:
        for value, idx in frame.groupby(column, sort=True).indices.items():
            y = frame["label"].to_numpy()[idx]
            m = threshold_free(y, s[idx])
            frauds = int(y.sum())
            flagged = bool(
                overall_auc is not None and m["auc"] is not None and frauds >= min_frauds and m["auc"] < overall_auc - margin
            )
            out.append({"slice": column, "value": str(value), "support": int(len(idx)), "frauds": frauds, **m,
                        "enough_support": frauds >= min_frauds, "flagged": flagged})
    return out


def temporal(frame: pd.DataFrame, scores) -> dict:
    s = np.asarray(scores, dtype=float)
    days = []
    for day, idx in frame.groupby("tx_date", sort=True).indices.items():
        y = frame["label"].to_numpy()[idx]
        days.append({"day": str(day), "rows": int(len(idx)), "frauds": int(y.sum()), **threshold_free(y, s[idx])})
    ap = [(i, d["average_precision"]) for i, d in enumerate(days) if d["average_precision"] is not None]
    slope = float(np.polyfit([i for i, _ in ap], [v for _, v in ap], 1)[0]) if len(ap) >= 2 else None
    return {"per_day": days, "average_precision_trend_per_day": slope}


def evaluate(frame: pd.DataFrame, scores, cfg: dict, slice_margin: float) -> dict:
    """The full report of one model on one scored frame (see the module docstring)."""
    ev = cfg["evaluation"]
    frame = add_slice_columns(frame, ev["amount_buckets"])
    y = frame["label"].to_numpy()
    overall = threshold_free(y, scores)
    cp = card_precision_at_k(frame, scores, ev["top_k"])
    report = {
        "rows": int(len(frame)), "frauds": int(y.sum()), "fraud_rate": float(y.mean()) if len(y) else None,
        "overall": {**overall, "card_precision_at_k": cp["mean"], "k": ev["top_k"]},
        "card_precision_per_day": cp["per_day"],
        "cost": cost_view(frame, scores, ev["top_k"], ev["review_cost"]),
        "calibration": calibration(y, scores),
        "slices": slices(frame, scores, overall["auc"], slice_margin, ev["min_slice_frauds"]),
        "temporal": temporal(frame, scores),
    }
    report["flagged_slices"] = [f"{s['slice']}={s['value']}" for s in report["slices"] if s["flagged"]]
    return report


# ------------------------------------------------------------------------------------------
# robustness


def _with_amount(X: pd.DataFrame, amount: np.ndarray) -> pd.DataFrame:
    """Rows as if the transaction had another amount: the amount, the customer's window means
    (which include the current transaction) and the 30-day ratio all move consistently."""
    out = X.copy()
    delta = amount - out["tx_amount"].to_numpy()
    out["tx_amount"] = amount
    for n in (1, 7, 30):
        nb = np.maximum(out[f"customer_nb_tx_{n}d"].to_numpy(), 1)
        out[f"customer_avg_amount_{n}d"] = out[f"customer_avg_amount_{n}d"].to_numpy() + delta / nb
    avg30 = out["customer_avg_amount_30d"].to_numpy()
    out["customer_amount_ratio_30d"] = np.where(avg30 != 0, amount / np.where(avg30 != 0, avg30, 1), 1.0)
    return out


def robustness(predict: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame, cfg: dict, seed: int) -> list[dict]:
    """Invariance and directional tests on the test rows; each with a value, a threshold and pass/fail."""
    rb = cfg["evaluation"]["robustness"]
    rng = np.random.default_rng(seed)
    base = np.asarray(predict(X), dtype=float)
    tests = []

    missing = X.copy()
    mask = rng.random(missing.shape) < 0.1
    missing = missing.mask(mask)
    got = np.asarray(predict(missing), dtype=float)
    tests.append({"name": "missing_values_scored", "kind": "invariance",
                  "description": "10% of feature values set to missing: every row still gets a score in [0, 1]",
                  "value": float(np.mean(np.isfinite(got) & (got >= 0) & (got <= 1))), "threshold": 1.0,
                  "passed": bool(np.all(np.isfinite(got) & (got >= 0) & (got <= 1)))})

    amounts = X["tx_amount"].to_numpy()
    noisy = _with_amount(X, np.round(amounts * (1 + rng.uniform(-rb["perturbation"], rb["perturbation"], len(X))), 2))
    change = float(np.mean(np.abs(np.asarray(predict(noisy), dtype=float) - base)))
    tests.append({"name": "small_amount_perturbation", "kind": "invariance",
                  "description": f"amounts moved by up to ±{rb['perturbation']:.0%}: mean |score change| stays small",
                  "value": change, "threshold": rb["max_mean_abs_change"], "passed": change <= rb["max_mean_abs_change"]})

    extreme = np.asarray(predict(_with_amount(X, np.full(len(X), rb["extreme_amount"]))), dtype=float)
    share = float(np.mean(extreme >= base - 1e-9))
    tests.append({"name": "extreme_amount_not_less_suspicious", "kind": "directional",
                  "description": f"amount set to {rb['extreme_amount']:g}: the score does not drop (share of rows)",
                  "value": share, "threshold": 0.95, "passed": bool(share >= 0.95 and np.all(np.isfinite(extreme)))})

    risky = X.copy()
    for c in [c for c in FEATURE_NAMES if c.startswith("terminal_risk_")]:
        risky[c] = 1.0
    risk = np.asarray(predict(risky), dtype=float)
    share = float(np.mean(risk >= base - 1e-9))
    tests.append({"name": "compromised_terminal_not_less_suspicious", "kind": "directional",
                  "description": "every terminal risk set to 1: the score does not drop (share of rows)",
                  "value": share, "threshold": 0.95, "passed": share >= 0.95})
    return tests


# ------------------------------------------------------------------------------------------
# baseline


def fit_baseline(train: pd.DataFrame, seed: int):
    """Logistic regression on the same features (standardised), the floor a model must beat."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(train[list(FEATURE_NAMES)].to_numpy(dtype=float), train["label"].to_numpy())
    return lambda X: model.predict_proba(X[list(FEATURE_NAMES)].to_numpy(dtype=float))[:, 1]


# ------------------------------------------------------------------------------------------
# rendering


def plot_report(report: dict, frame: pd.DataFrame, scores, out_dir: Path, importance: dict[str, float] | None = None) -> list[Path]:
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
    ax.set(xlabel="mean predicted", ylabel="fraction fraud", title=f"Reliability (Brier {report['calibration']['brier']:.4f})")
    save(fig, "calibration.png")

    sl = [x for x in report["slices"] if x["auc"] is not None]
    fig, ax = plt.subplots(figsize=(6, max(3, 0.25 * len(sl))))
    ax.barh([f"{x['slice']}={x['value']} (n={x['support']})" for x in sl], [x["auc"] for x in sl],
            color=["tab:red" if x["flagged"] else "tab:blue" for x in sl])
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
        "<h2>Overall</h2>", _table(overall, ["model", "auc", "average_precision", "card_precision_at_k"]),
        "<h2>Cost view</h2>", _table([report["cost"]], list(report["cost"])),
        "<h2>Calibration</h2>", f"<p>Brier score {report['calibration']['brier']:.5f}</p>",
        _table(report["calibration"]["reliability"], ["mean_predicted", "fraction_fraud", "count"]),
        "<h2>Slices</h2>", _table(report["slices"], ["slice", "value", "support", "frauds", "auc", "average_precision", "flagged"]),
        "<h2>By day</h2>", f"<p>Average-precision trend: {report['temporal']['average_precision_trend_per_day']} per day</p>",
        _table(report["temporal"]["per_day"], ["day", "rows", "frauds", "auc", "average_precision"]),
    ]
    if "robustness" in report:
        parts += ["<h2>Robustness</h2>", _table(report["robustness"], ["name", "kind", "description", "value", "threshold", "passed"])]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: dict, out_dir: Path, title: str, comparisons: dict | None = None) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, page = out_dir / "evaluation.json", out_dir / "evaluation.html"
    js.write_text(json.dumps(report, indent=2, default=str))
    page.write_text(render_html(title, report, comparisons))
    return js, page
