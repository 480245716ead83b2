"""Batch scoring: a day's transactions scored by the champion, and the investigators' review queue.

``python -m jobs.scoring.batch --date D`` (or :func:`score_day`; the ``batch_score`` DAG's task)
reads day D's partition of ``features.transaction_features`` and writes, without a JVM (delta-rs):

* ``predictions.transaction_scores``: one row per transaction: score, alert (score at or above
  the version's alert threshold), model name and version, partitioned by ``batch_date``;
* ``predictions.daily_alerts``: the review queue of day D: the top-k cards by their highest score
  of the day (k = the evaluation's ``top_k``), leaving out cards already known compromised (a
  report known before D began), as Card Precision@k does (the metric also drops cards it detected
  on earlier days of its window: in operation those cards are reported, so the report rule covers
  them once their report is known). Each alert carries its three
  reason codes: the features that pushed the score of the card's top transaction up most
  (LightGBM contributions), so an investigator sees why the card is in the queue.

Re-running a day replaces that day's rows in both tables (one commit each).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.config import Settings, get_settings, load_training_config
from jobs.features.registry import FEATURE_NAMES
from jobs.platform import delta
from jobs.scoring.model import ScoringModel, load_scoring_model

log = logging.getLogger(__name__)

FEATURES_TABLE = "features.transaction_features"
FACT_TABLE = "marts.fct_transactions"
REASONS = 3

SCORES = delta.TableSpec(
    "predictions.transaction_scores",
    pa.schema(
        [
            pa.field("transaction_id", pa.string(), nullable=False),
            pa.field("tx_datetime", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("customer_id", pa.string(), nullable=False),
            pa.field("terminal_id", pa.string(), nullable=False),
            pa.field("tx_amount", pa.float64(), nullable=False),
            pa.field("batch_date", pa.date32(), nullable=False),
            pa.field("score", pa.float64(), nullable=False),
            pa.field("alert", pa.bool_(), nullable=False),
            pa.field("alert_threshold", pa.float64(), nullable=False),
            pa.field("model_name", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("feature_set_version", pa.string(), nullable=False),
            pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    ),
    ("batch_date",),
)
REASON = pa.struct(
    [
        pa.field("feature", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("contribution", pa.float64(), nullable=False),
    ]
)
ALERTS = delta.TableSpec(
    "predictions.daily_alerts",
    pa.schema(
        [
            pa.field("alert_date", pa.date32(), nullable=False),
            pa.field("rank", pa.int32(), nullable=False),
            pa.field("customer_id", pa.string(), nullable=False),
            pa.field("transaction_id", pa.string(), nullable=False),  # the card's top-scored transaction
            pa.field("terminal_id", pa.string(), nullable=False),
            pa.field("tx_datetime", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("tx_amount", pa.float64(), nullable=False),
            pa.field("score", pa.float64(), nullable=False),
            pa.field("above_threshold", pa.bool_(), nullable=False),
            pa.field("card_transactions", pa.int32(), nullable=False),  # the card's transactions that day
            pa.field("reason_codes", pa.string(), nullable=False),  # "feature (+0.81), feature (+0.40), ..."
            pa.field("reasons", pa.list_(REASON), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    ),
    ("alert_date",),
)


def read_day_features(settings: Settings, day: date) -> pd.DataFrame:
    """Day ``day``'s rows of ``features.transaction_features`` (keys, features, feature-set version)."""
    from deltalake import DeltaTable

    if not delta.exists(settings, FEATURES_TABLE):
        raise ValueError(f"{FEATURES_TABLE} does not exist: run data_pipeline first")
    columns = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "batch_date", *FEATURE_NAMES]
    frame = (
        DeltaTable(str(delta.path(settings, FEATURES_TABLE)))
        .to_pyarrow_table(columns=[*columns, "feature_set_version"], filters=[("batch_date", "=", day)])
        .to_pandas()
    )
    if frame.empty:
        raise ValueError(f"no features for {day} in {FEATURES_TABLE}: run data_pipeline for {day} first")
    return frame.sort_values(["tx_datetime", "transaction_id"], kind="mergesort").reset_index(drop=True)


def known_compromised(settings: Settings, day: date) -> set[str]:
    """Cards with a fraud report known before ``day`` began (``report_known_at`` at or before its midnight)."""
    from deltalake import DeltaTable

    midnight = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC))
    data = DeltaTable(str(delta.path(settings, FACT_TABLE))).to_pyarrow_table(
        columns=["customer_id", "report_known_at"], filters=[("report_known_at", "<=", midnight)]
    )
    return set(data.column("customer_id").to_pylist())


def reason_codes(model: ScoringModel, rows: np.ndarray, n: int = REASONS) -> list[list[dict]]:
    """Per row: the ``n`` features with the largest positive contribution to its score (fewer if fewer push up)."""
    contrib = model.contributions(rows)[:, :-1]
    out = []
    for values, c in zip(rows, contrib, strict=True):
        order = [j for j in np.argsort(-c, kind="stable")[:n] if c[j] > 0]
        out.append(
            [{"feature": FEATURE_NAMES[j], "value": float(values[j]), "contribution": float(c[j])} for j in order]
        )
    return out


def review_queue(frame: pd.DataFrame, scores: np.ndarray, excluded: set[str], k: int) -> pd.DataFrame:
    """The top ``k`` cards of the day by highest score, cards in ``excluded`` left out; one row per card.

    Each row is the card's top-scored transaction (ties: the earlier one), with ``card_transactions``;
    cards are ranked by score, ties by card id, so the queue is deterministic.
    """
    df = frame.assign(score=scores)
    df = df[~df["customer_id"].isin(excluded)]
    counts = df.groupby("customer_id").size().rename("card_transactions")
    top = df.sort_values(["score", "tx_datetime"], ascending=[False, True], kind="mergesort")
    top = top.drop_duplicates("customer_id").join(counts, on="customer_id")
    top = top.sort_values(["score", "customer_id"], ascending=[False, True], kind="mergesort").head(k)
    return top.reset_index(drop=True)


def score_day(day: date | str, settings: Settings | None = None, model: ScoringModel | None = None) -> dict:
    """Score ``day``'s transactions with the champion and write the scores and the review queue."""
    day = date.fromisoformat(day) if isinstance(day, str) else day
    settings = settings or get_settings()
    t0 = time.perf_counter()
    model = model or load_scoring_model(settings=settings)
    frame = read_day_features(settings, day)
    versions = set(frame["feature_set_version"])
    if versions != {model.feature_set_version}:
        raise ValueError(
            f"features of {day} are {sorted(versions)}, {model.name} version {model.version} needs "
            f"{model.feature_set_version}: rebuild the features of {day}"
        )
    matrix = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    scores = model.predict(matrix)
    now = datetime.now(UTC)
    threshold = model.alert_threshold
    scored = pa.table(
        {
            "transaction_id": frame["transaction_id"],
            "tx_datetime": frame["tx_datetime"],
            "customer_id": frame["customer_id"],
            "terminal_id": frame["terminal_id"],
            "tx_amount": frame["tx_amount"].astype("float64"),
            "batch_date": frame["batch_date"],
            "score": scores,
            "alert": scores >= threshold,
            "alert_threshold": np.full(len(frame), threshold),
            "model_name": [model.name] * len(frame),
            "model_version": [model.version] * len(frame),
            "feature_set_version": frame["feature_set_version"],
            "scored_at": pa.array([now] * len(frame), pa.timestamp("us", tz="UTC")),
        }
    )
    scores_version = delta.overwrite_where(settings, SCORES, scored, f"batch_date = '{day.isoformat()}'")

    k = int(load_training_config(settings)["evaluation"]["top_k"])
    excluded = known_compromised(settings, day)
    queue = review_queue(frame, scores, excluded, k)
    reasons = reason_codes(model, queue[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)) if len(queue) else []
    alerts = pa.table(
        {
            "alert_date": pa.array([day] * len(queue), pa.date32()),
            "rank": pa.array(np.arange(1, len(queue) + 1), pa.int32()),
            "customer_id": queue["customer_id"],
            "transaction_id": queue["transaction_id"],
            "terminal_id": queue["terminal_id"],
            "tx_datetime": queue["tx_datetime"],
            "tx_amount": queue["tx_amount"].astype("float64"),
            "score": queue["score"].astype("float64"),
            "above_threshold": queue["score"] >= threshold,
            "card_transactions": pa.array(queue["card_transactions"], pa.int32()),
            "reason_codes": [", ".join(f"{r['feature']} ({r['contribution']:+.2f})" for r in rs) for rs in reasons],
            "reasons": pa.array(reasons, pa.list_(REASON)),
            "model_version": [model.version] * len(queue),
            "created_at": pa.array([now] * len(queue), pa.timestamp("us", tz="UTC")),
        },
        schema=ALERTS.schema,
    )
    alerts_version = delta.overwrite_where(settings, ALERTS, alerts, f"alert_date = '{day.isoformat()}'")
    summary = {
        "date": day.isoformat(),
        "model_version": model.version,
        "transactions": len(frame),
        "alerts_above_threshold": int((scores >= threshold).sum()),
        "cards_above_threshold": int(frame.loc[scores >= threshold, "customer_id"].nunique()),
        "review_queue": len(queue),
        "known_compromised_excluded": int(frame["customer_id"].isin(excluded).sum()),
        "alert_threshold": threshold,
        "scores_table_version": scores_version,
        "alerts_table_version": alerts_version,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info("batch scoring: %s", summary)
    return summary


def days_to_score(requested: str | None, events: list[dict], settings: Settings | None = None) -> list[str]:
    """The days a ``batch_score`` run scores: the one requested, else those the feature Asset events name.

    ``events``: the extras of the triggering Asset events (``data_pipeline`` sets ``batch_date``);
    with neither, the latest day of ``features.transaction_features``.
    """
    if requested:
        return [date.fromisoformat(requested).isoformat()]
    days = sorted({e["batch_date"] for e in events if e and e.get("batch_date")})
    if days:
        return days
    from deltalake import DeltaTable

    settings = settings or get_settings()
    if not delta.exists(settings, FEATURES_TABLE):
        raise ValueError(f"{FEATURES_TABLE} does not exist: run data_pipeline first")
    latest = (
        DeltaTable(str(delta.path(settings, FEATURES_TABLE)))
        .to_pyarrow_table(columns=["batch_date"])
        .column("batch_date")
    )
    if not len(latest):
        raise ValueError(f"{FEATURES_TABLE} is empty: run data_pipeline first")
    return [max(latest.to_pylist()).isoformat()]


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging
    from jobs.scoring.model import ModelNotServable

    parser = argparse.ArgumentParser(prog="python -m jobs.scoring.batch", description=__doc__.split("\n")[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True, help="batch date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        print(json.dumps(score_day(args.date), default=str))
    except (ValueError, ModelNotServable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
