"""Metrics beyond accuracy on one scored frame: ranking, Card Precision@k, cost, calibration, slices, time.

Everything here works on a scored test frame (one row per transaction with ``label``, ``tx_date``,
``customer_id``, ``tx_amount``, the features and the slice columns) and returns plain dicts, so
the report is JSON; :mod:`jobs.evaluation.report` turns it into what a reviewer reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

SLICES = ("segment", "region", "merchant_category", "amount_bucket", "night", "weekend")
PARITY_GROUPS = ("segment", "region")  # the customer groups whose alert and false-positive rates must be close


def _safe(metric, y, s) -> float | None:
    y = np.asarray(y)
    if len(y) == 0 or y.min() == y.max():
        return None
    return float(metric(y, s))


def threshold_free(y, s) -> dict:
    return {"auc": _safe(roc_auc_score, y, s), "average_precision": _safe(average_precision_score, y, s)}


def _eligible_rows(frame: pd.DataFrame, scores) -> pd.DataFrame:
    """day, card, label, score, amount per transaction, without cards already known compromised.

    A card is known compromised on a day when it had a report before that day (column
    ``card_first_reported_at``, if present); it is no longer an alert, whatever its score.
    """
    df = pd.DataFrame(
        {
            "day": frame["tx_date"].to_numpy(),
            "card": frame["customer_id"].to_numpy(),
            "label": frame["label"].to_numpy() if "label" in frame else np.zeros(len(frame), dtype=int),
            "score": np.asarray(scores, dtype=float),
            "amount": frame["tx_amount"].to_numpy() if "tx_amount" in frame else np.zeros(len(frame)),
        }
    )
    if "card_first_reported_at" in frame:
        first = pd.to_datetime(frame["card_first_reported_at"]).to_numpy()
        day_start = pd.to_datetime(df["day"]).to_numpy()
        df = df[~(~pd.isna(first) & (first < day_start))]
    return df


def _daily_alerts(frame: pd.DataFrame, scores, k: int):
    """Per day, in order: the day's rows and the ``k`` cards alerted, as the handbook's Card Precision@k.

    Cards already known to be compromised (:func:`_eligible_rows`) and cards detected on earlier
    days are dropped; each card is scored by its highest transaction score that day.
    """
    df = _eligible_rows(frame, scores)
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


def alert_threshold(frame: pd.DataFrame, scores, k: int) -> dict:
    """The score at or above which a card is alerted so that alerts per day match the review budget ``k``.

    Per day, each card not already known compromised counts once, with its highest score (as in
    :func:`_daily_alerts`); the threshold is the ``k x days``-th highest of those card-day
    scores, so over the window the days together raise ``k`` alerts a day on average. Returned
    with the alerts per day it gives on the window (mean, min, max).
    """
    base = _eligible_rows(frame, scores)
    card_days = base.groupby(["day", "card"])["score"].max()
    days = max(base["day"].nunique(), 1)
    ranked = np.sort(card_days.to_numpy())[::-1]
    if not len(ranked):
        return {"threshold": None, "k": k, "days": 0, "alerts_per_day": {}}
    threshold = float(ranked[min(k * days, len(ranked)) - 1])
    per_day = (card_days >= threshold).groupby(level="day").sum()
    return {
        "threshold": threshold,
        "k": k,
        "days": int(days),
        "alerts_per_day": {
            "mean": float(per_day.mean()),
            "min": int(per_day.min()),
            "max": int(per_day.max()),
        },
    }


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
        "alerts": int(alerts),
        "review_cost_per_alert": review_cost,
        "review_cost": round(cost, 2),
        "fraud_amount": round(total, 2),
        "fraud_amount_caught": round(caught, 2),
        "fraud_amount_missed": round(total - caught, 2),
        "net_savings": round(caught - cost, 2),
        "share_of_fraud_amount_caught": round(caught / total, 4) if total else None,
    }


def calibration(y, s, bins: int = 10) -> dict:
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    edges = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, max(len(edges) - 2, 0))
    curve = []
    for b in np.unique(which):
        m = which == b
        curve.append(
            {"mean_predicted": float(s[m].mean()), "fraction_fraud": float(y[m].mean()), "count": int(m.sum())}
        )
    return {"brier": float(brier_score_loss(y, s)), "base_rate": float(y.mean()), "reliability": curve}


def add_slice_columns(frame: pd.DataFrame, amount_buckets: list[float]) -> pd.DataFrame:
    out = frame.copy()
    edges = list(amount_buckets)
    labels = [
        f"{edges[i]:g}-{edges[i + 1]:g}" if i + 2 < len(edges) else f">={edges[i]:g}" for i in range(len(edges) - 1)
    ]
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
                overall_auc is not None
                and m["auc"] is not None
                and frauds >= min_frauds
                and m["auc"] < overall_auc - margin
            )
            out.append(
                {
                    "slice": column,
                    "value": str(value),
                    "support": int(len(idx)),
                    "frauds": frauds,
                    **m,
                    "enough_support": frauds >= min_frauds,
                    "flagged": flagged,
                }
            )
    return out


def _gap(groups: list[dict], key: str) -> float | None:
    """Largest minus smallest ``key`` over the groups with enough support (None with fewer than two)."""
    values = [g[key] for g in groups if g["enough_support"] and g[key] is not None]
    return float(max(values) - min(values)) if len(values) >= 2 else None


def parity(frame: pd.DataFrame, scores, threshold: float | None, min_rows: int) -> dict:
    """Alert rate and false-positive rate per customer segment and per region, at the alert threshold.

    A transaction is alerted when its score reaches ``threshold`` (what serving and batch scoring
    do). Per group: rows, alerts, alert rate, genuine rows, false positives and the false-positive
    rate (alerted genuine rows over genuine rows). Per grouping, the **gaps** (largest minus smallest
    rate) over the groups with at least ``min_rows`` rows: what the gate holds against its margins.
    Groupings missing from ``frame`` are left out.
    """
    s = np.asarray(scores, dtype=float)
    alerted = s >= threshold if threshold is not None else np.zeros(len(s), dtype=bool)
    genuine = frame["label"].to_numpy() == 0
    out = {}
    for column in (c for c in PARITY_GROUPS if c in frame):
        groups = []
        for value, idx in frame.groupby(column, sort=True).indices.items():
            a, g = alerted[idx], genuine[idx]
            fp = int((a & g).sum())
            groups.append(
                {
                    "value": str(value),
                    "rows": int(len(idx)),
                    "alerts": int(a.sum()),
                    "alert_rate": float(a.mean()),
                    "genuine": int(g.sum()),
                    "false_positives": fp,
                    "false_positive_rate": fp / int(g.sum()) if g.any() else None,
                    "enough_support": len(idx) >= min_rows,
                }
            )

        out[column] = {
            "groups": groups,
            "alert_rate_gap": _gap(groups, "alert_rate"),
            "false_positive_rate_gap": _gap(groups, "false_positive_rate"),
        }
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
        "rows": int(len(frame)),
        "frauds": int(y.sum()),
        "fraud_rate": float(y.mean()) if len(y) else None,
        "overall": {**overall, "card_precision_at_k": cp["mean"], "k": ev["top_k"]},
        "card_precision_per_day": cp["per_day"],
        "cost": cost_view(frame, scores, ev["top_k"], ev["review_cost"]),
        "calibration": calibration(y, scores),
        "slices": slices(frame, scores, overall["auc"], slice_margin, ev["min_slice_frauds"]),
        "temporal": temporal(frame, scores),
        "alert_threshold": alert_threshold(frame, scores, ev["top_k"]),
    }
    report["parity"] = parity(frame, scores, report["alert_threshold"]["threshold"], ev["min_parity_rows"])
    report["flagged_slices"] = [f"{s['slice']}={s['value']}" for s in report["slices"] if s["flagged"]]
    return report
