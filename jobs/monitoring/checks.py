"""The daily monitoring checks, their rows in ``monitoring.checks``, and a command line to run them.

``python -m jobs.monitoring.checks --date D [--check data_drift ...]`` runs the checks of day D
(thresholds: ``jobs/conf/monitoring.yaml``) and writes one row per (check, model version, subject,
metric) with its value, threshold and status (``ok``, ``warn``, ``alert``; ``skipped`` when there is
nothing to check). Re-running a day replaces that day's rows of the checks it runs (one commit each),
so every number has one history. No JVM: the tables are read with delta-rs.

Checks so far:

* ``data_drift``: every model feature of the day, in the batch features (``source=batch``) and in the
  served traffic (``source=served``, the prediction log), against the champion's training reference:
  PSI and binned KS for continuous features, chi-square and the change of the share of ones for
  binary ones (:mod:`jobs.evaluation.profile`);
* ``prediction_drift``: the day's batch scores against the test window's, and the alert rate;
* ``numerical_stability``: NaN, infinite or out-of-[0, 1] scores, batch and served;
* ``data_quality``: per landing source, the quarantine rate, the volume against the trailing median,
  and a landing schema change (a new or missing column) as its own alert;
* ``skew``: training/serving skew, the served feature vectors against the batch features of the same
  transactions;
* ``staleness``: days since the version's training cutoff;
* ``health``: the service's day from the prediction log (volume, fallbacks, p50/p99 latency);
* ``performance``: as labels mature, AUC, average precision and Card Precision@k of the version on
  the day whose labels matured, next to its offline test metrics (the gap, trended); and concept
  drift when performance falls while that day's inputs did not drift.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.config import Settings, get_settings, load_monitoring_config
from jobs.evaluation.profile import compare
from jobs.features.registry import FEATURE_NAMES
from jobs.monitoring.reference import NoReference, champion_version, load_reference
from jobs.platform import delta

log = logging.getLogger(__name__)

CHECKS = delta.TableSpec(
    "monitoring.checks",
    pa.schema(
        [
            pa.field("check_date", pa.date32(), nullable=False),
            pa.field("check_name", pa.string(), nullable=False),
            pa.field("model_version", pa.string()),
            pa.field("source", pa.string(), nullable=False),  # batch | served | landing | model
            pa.field("subject", pa.string(), nullable=False),  # a feature, "score", a table ...
            pa.field("metric", pa.string(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("threshold", pa.float64()),
            pa.field("status", pa.string(), nullable=False),  # ok | warn | alert | skipped
            pa.field("detail", pa.string()),
            pa.field("computed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    ),
    ("check_date",),
)
STATUSES = ("ok", "warn", "alert", "skipped")
SCORES_TABLE = "predictions.transaction_scores"
FEATURES_TABLE = "features.transaction_features"
PREDICTION_LOG_TABLE = "monitoring.prediction_log"


@dataclass(frozen=True)
class Row:
    """One metric of one check (a row of ``monitoring.checks`` without its date and check name)."""

    source: str
    subject: str
    metric: str
    value: float | None
    threshold: float | None = None
    status: str = "ok"
    detail: str | None = None


def level(value: float | None, warn: float | None, alert: float | None) -> str:
    """``alert`` at or past ``alert``, ``warn`` at or past ``warn``, else ``ok`` (None: ``skipped``)."""
    if value is None or not np.isfinite(value):
        return "skipped"
    if alert is not None and value >= alert:
        return "alert"
    if warn is not None and value >= warn:
        return "warn"
    return "ok"


def worst(statuses) -> str:
    """The most severe status (alert > warn > ok > skipped)."""
    order = {"skipped": 0, "ok": 1, "warn": 2, "alert": 3}
    return max(statuses, key=order.__getitem__, default="skipped")


# ----------------------------------------------------------------------------------------- inputs


def _read(settings: Settings, table: str, columns: list[str], column: str, day: date | list[date]) -> pd.DataFrame:
    """``columns`` of ``table``'s rows whose ``column`` is ``day`` (or one of the days of a list)."""
    from deltalake import DeltaTable

    if not delta.exists(settings, table):
        return pd.DataFrame(columns=columns)
    where = (column, "in", day) if isinstance(day, list) else (column, "=", day)
    return DeltaTable(str(delta.path(settings, table))).to_pyarrow_table(columns=columns, filters=[where]).to_pandas()


def batch_features(settings: Settings, day: date) -> pd.DataFrame:
    return _read(settings, FEATURES_TABLE, list(FEATURE_NAMES), "batch_date", day)


def batch_scores(settings: Settings, day: date) -> pd.DataFrame:
    return _read(settings, SCORES_TABLE, ["score", "alert", "model_version"], "batch_date", day)


def served(settings: Settings, day: date) -> pd.DataFrame:
    """The served requests for the day's transactions (by transaction time, so traffic around
    midnight counts on its day): score, model version, and the feature vector as columns."""
    from datetime import timedelta

    columns = ["transaction_id", "tx_datetime", "score", "model_version", "features"]
    around = [day - timedelta(days=1), day, day + timedelta(days=1)]
    frame = _read(settings, PREDICTION_LOG_TABLE, columns, "served_date", around)
    if not frame.empty:
        frame = frame[pd.to_datetime(frame["tx_datetime"], utc=True).dt.date == day].reset_index(drop=True)
    if frame.empty:
        return pd.DataFrame(columns=["transaction_id", "score", "model_version", *FEATURE_NAMES])
    vectors = pd.DataFrame([dict(f) for f in frame.pop("features")], index=frame.index)
    return frame.drop(columns=["tx_datetime"]).join(vectors.reindex(columns=list(FEATURE_NAMES)))


def day_version(settings: Settings, scores: pd.DataFrame) -> str | None:
    """The model version that scored most of the day's batch, or the champion when nothing was scored."""
    if not scores.empty:
        return str(scores["model_version"].mode().iloc[0])
    return champion_version(settings)


# ----------------------------------------------------------------------------------------- checks


def feature_drift_rows(reference: dict, frame: pd.DataFrame, source: str, cfg: dict) -> list[Row]:
    """Per feature: PSI and KS (continuous) or chi-square and the change of the share of ones (binary)."""
    rows: list[Row] = []
    if len(frame) < cfg["min_rows"]:
        detail = f"{len(frame)} rows < min_rows {cfg['min_rows']}"
        return [Row(source, "*", "rows", float(len(frame)), float(cfg["min_rows"]), "skipped", detail)]
    drifted = []
    excluded = set(cfg.get("exclude_features", []))
    for name in FEATURE_NAMES:
        ref = reference["features"].get(name)
        if name in excluded:
            rows.append(Row(source, name, "psi", None, None, "skipped", "excluded (monitoring.yaml)"))
            continue
        if ref is None or name not in frame:
            rows.append(Row(source, name, "psi", None, None, "skipped", "not in the reference"))
            continue
        d = compare(ref, frame[name].to_numpy(dtype="float64", na_value=np.nan))
        if d.n == 0:
            rows.append(Row(source, name, "missing_share", 1.0, None, "alert", "no finite value that day"))
            drifted.append(name)
            continue
        if d.kind == "binary":
            significant = d.chi2_pvalue < cfg["chi2_pvalue"]
            change = level(d.p1_change, None, cfg["p1_change_alert"])
            status = change if significant or change == "skipped" else "ok"
            detail = json.dumps({"reference": round(d.p1_reference, 4), "current": round(d.p1_current, 4)})
            rows += [
                Row(source, name, "p1_change", d.p1_change, cfg["p1_change_alert"], status, detail),
                Row(
                    source, name, "chi2_pvalue", d.chi2_pvalue, cfg["chi2_pvalue"], "ok" if not significant else "warn"
                ),
            ]
        else:
            psi_status = level(d.psi, cfg["psi_warn"], cfg["psi_alert"])
            ks_status = "alert" if d.ks_stat >= cfg["ks_stat_alert"] and d.ks_pvalue < cfg["ks_pvalue"] else "ok"
            status = worst([psi_status, ks_status])
            rows += [
                Row(source, name, "psi", d.psi, cfg["psi_alert"], psi_status),
                Row(source, name, "ks_stat", d.ks_stat, cfg["ks_stat_alert"], ks_status, f"p={d.ks_pvalue:.3g}"),
            ]
        if status == "alert":
            drifted.append(name)
    n = len(drifted)
    overall = "alert" if n >= cfg["min_drifted_features"] else ("warn" if n else "ok")
    rows.append(
        Row(
            source,
            "*",
            "drifted_features",
            float(n),
            float(cfg["min_drifted_features"]),
            overall,
            ", ".join(drifted) or None,
        )
    )
    return rows


def data_drift(settings: Settings, day: date, version: str | None, cfg: dict) -> list[Row]:
    """The day's features, batch and served, against the version's training reference."""
    if version is None:
        return [Row("model", "*", "reference", None, None, "skipped", "no champion yet")]
    try:
        reference = load_reference(version, settings)
    except NoReference as exc:
        return [Row("model", "*", "reference", None, None, "skipped", str(exc))]
    c = cfg["data_drift"]
    rows = feature_drift_rows(reference, batch_features(settings, day), "batch", c)
    traffic = served(settings, day)
    if not traffic.empty:
        rows += feature_drift_rows(reference, traffic[traffic["model_version"] == version], "served", c)
    return rows


def prediction_drift(settings: Settings, day: date, version: str | None, cfg: dict) -> list[Row]:
    """The day's batch scores and alert rate against the test window's."""
    c = cfg["prediction_drift"]
    scores = batch_scores(settings, day)
    if version is None or scores.empty:
        return [Row("batch", "score", "rows", float(len(scores)), None, "skipped", "no scores or no champion")]
    try:
        ref = load_reference(version, settings)["score"]
    except NoReference as exc:
        return [Row("model", "score", "reference", None, None, "skipped", str(exc))]
    mine = scores[scores["model_version"] == version]
    if mine.empty:
        return [Row("batch", "score", "rows", 0.0, None, "skipped", f"no scores of version {version}")]
    d = compare(ref, mine["score"].to_numpy(dtype="float64"))
    if d.n == 0:  # every score NaN or infinite: numerical_stability alerts on it
        return [Row("batch", "score", "finite_scores", 0.0, None, "skipped", "no finite score that day")]
    rows = [
        Row("batch", "score", "psi", d.psi, c["psi_alert"], level(d.psi, c["psi_warn"], c["psi_alert"])),
        Row("batch", "score", "ks_stat", d.ks_stat, None, "ok", f"p={d.ks_pvalue:.3g}"),
    ]
    if ref.get("alert_rate"):
        rate = float(mine["alert"].mean()) if len(mine) else float("nan")
        ratio = max(rate / ref["alert_rate"], ref["alert_rate"] / rate) if rate > 0 else float("inf")
        detail = json.dumps({"reference": round(ref["alert_rate"], 5), "current": round(rate, 5)})
        status = level(ratio, None, c["alert_rate_ratio_alert"]) if np.isfinite(rate) else "skipped"
        if ratio == float("inf"):
            status = "alert"  # no alert at all on a day with scores
        rows.append(Row("batch", "alert_rate", "ratio", min(ratio, 1e9), c["alert_rate_ratio_alert"], status, detail))
    return rows


def numerical_stability(settings: Settings, day: date, version: str | None, cfg: dict) -> list[Row]:
    """Share of NaN, infinite or out-of-[0, 1] scores, batch and served."""
    limit = cfg["numerical_stability"]["bad_score_share_alert"]
    rows = []
    for source, frame in (("batch", batch_scores(settings, day)), ("served", served(settings, day))):
        if frame.empty:
            rows.append(Row(source, "score", "bad_score_share", None, limit, "skipped", "no scores"))
            continue
        s = frame["score"].to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isfinite(s) | (s < 0) | (s > 1)
        share = float(bad.mean())
        detail = json.dumps({"nan": int(np.isnan(s).sum()), "inf": int(np.isinf(s).sum()), "rows": int(s.size)})
        rows.append(Row(source, "score", "bad_score_share", share, limit, "alert" if share > limit else "ok", detail))
    return rows


def labelled_scores(settings: Settings, day: date) -> pd.DataFrame:
    """Day ``day``'s batch scores with their labels as ``marts.fct_transactions`` holds them now
    (``label`` 1/0; pending rows dropped) and the cards already known compromised that day."""
    from jobs.scoring.batch import FACT_TABLE, known_compromised

    scores = _read(
        settings,
        SCORES_TABLE,
        ["transaction_id", "customer_id", "tx_datetime", "tx_amount", "score", "model_version"],
        "batch_date",
        day,
    )
    labels = _read(settings, FACT_TABLE, ["transaction_id", "label_status"], "batch_date", day)
    frame = scores.merge(labels, on="transaction_id", how="inner")
    frame = frame[frame["label_status"].isin(["fraud", "genuine"])].copy()
    frame["label"] = (frame["label_status"] == "fraud").astype(int)
    frame["tx_date"] = day
    compromised = known_compromised(settings, day) if len(frame) else set()
    # Card Precision@k leaves out cards known compromised before the day began, as in training
    frame["card_first_reported_at"] = pd.NaT
    frame.loc[frame["customer_id"].isin(compromised), "card_first_reported_at"] = pd.Timestamp(day) - pd.Timedelta(
        seconds=1
    )
    return frame.reset_index(drop=True)


def offline_metrics(settings: Settings, version: str, k: int) -> dict[str, float]:
    """The test-window metrics recorded on ``version``'s training run."""
    from jobs.platform.tracking import Metric, mlflow_client

    client = mlflow_client(settings)
    run = client.get_run(client.get_model_version(settings.mlflow.model_name, version).run_id)
    m = run.data.metrics
    names = {
        "auc": Metric.TEST_AUC,
        "average_precision": Metric.TEST_AP,
        "card_precision": Metric.test_card_precision(k),
    }
    return {key: m[name] for key, name in names.items() if name in m}


def performance(settings: Settings, day: date, version: str | None, cfg: dict) -> list[Row]:
    """Delayed labels: the champion's AUC, average precision and Card Precision@k on the day whose
    labels matured today (``day`` - label maturity), next to its offline test metrics; and concept
    drift, when performance falls while that day's inputs did not drift."""
    from jobs.config import load_training_config
    from jobs.evaluation.metrics import card_precision_at_k, threshold_free

    c = cfg["performance"]
    matured = date.fromordinal(day.toordinal() - settings.data.label_maturity_days)
    frame = labelled_scores(settings, matured)
    scored_by = str(frame["model_version"].mode().iloc[0]) if len(frame) else version
    frame = frame[frame["model_version"] == scored_by]
    detail = json.dumps({"matured_day": matured.isoformat(), "rows": len(frame), "frauds": int(frame["label"].sum())})
    if len(frame) < c["min_rows"] or frame["label"].nunique() < 2:
        return [Row("batch", "*", "labelled_rows", float(len(frame)), float(c["min_rows"]), "skipped", detail)]
    k = load_training_config(settings)["evaluation"]["top_k"]
    online = {**threshold_free(frame["label"], frame["score"])}
    online["card_precision"] = card_precision_at_k(frame, frame["score"].to_numpy(), k)["mean"]
    offline = offline_metrics(settings, scored_by, k) if scored_by else {}
    rows, fell = [], []
    for key, value in online.items():
        drop = c["drop_alert"][key]
        reference = offline.get(key)
        threshold = None if reference is None else reference - drop
        status = "skipped" if value is None else ("ok" if threshold is None or value >= threshold else "alert")
        if status == "alert":
            fell.append(key)
        info = {
            "matured_day": matured.isoformat(),
            "offline": reference,
            "gap": None if reference is None or value is None else reference - value,
        }
        rows.append(
            Row(
                "batch",
                key if key != "card_precision" else f"card_precision_at_{k}",
                "online",
                value,
                threshold,
                status,
                json.dumps(info),
            )
        )
    rows.append(Row("batch", "*", "labelled_rows", float(len(frame)), float(c["min_rows"]), "ok", detail))
    if fell:
        # concept drift: the inputs of that day did not drift, yet the model does worse
        inputs = read_checks(settings, matured)
        drift = inputs[(inputs["check_name"] == "data_drift") & (inputs["metric"] == "drifted_features")]
        if drift.empty:
            verdict, why = "skipped", "the matured day's inputs were not checked"
        elif (drift["status"] == "alert").any():
            verdict, why = "ok", "the inputs drifted too: data drift, not concept drift"
        else:
            verdict, why = "alert", f"{', '.join(fell)} fell while the inputs did not drift"
        rows.append(Row("batch", "*", "concept_drift", float(verdict == "alert"), None, verdict, why))
    return rows


def landing_columns(path) -> list[str]:
    """The columns a landing file delivers: its CSV header, or the keys of a JSON-lines file's records."""
    import csv

    if path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            return [c.strip() for c in next(csv.reader([f.readline()]), [])]
    keys: dict[str, None] = {}
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for _, line in zip(range(100), f, strict=False):
            try:
                keys.update(dict.fromkeys(json.loads(line)))
            except (ValueError, TypeError, AttributeError):
                continue
    return list(keys)


TYPE_RULE_SUFFIXES = ("_is_numeric", "_parsable", "_well_formed")  # the suites' rules on a column's type


def retyped_columns(validation_summary: str | None, columns: list[str], share: float) -> dict[str, float]:
    """Columns whose type rules (numeric, parsable timestamp, id pattern) failed on at least ``share``
    of the rows the ingestion validated: the column is there, but no longer of its type."""
    try:
        summary = json.loads(validation_summary or "{}")
    except ValueError:
        return {}
    n, rules = summary.get("rows") or 0, summary.get("rules") or {}
    if not n:
        return {}
    out = {}
    for column in columns:
        failed = max((rules.get(column + suffix) or 0 for suffix in TYPE_RULE_SUFFIXES), default=0)
        if failed / n >= share:
            out[column] = round(failed / n, 4)
    return out


def schema_change(
    columns: list[str], contract: list[str], retyped: dict[str, float] | None = None
) -> dict[str, list[str]]:
    """New, missing and retyped columns of a landing file against its contract (empty lists: no change)."""
    return {
        "new": [c for c in columns if c not in contract],
        "missing": [c for c in contract if c not in columns],
        "retyped": sorted(retyped or {}),
    }


def _count(value) -> int:
    """A row count from the ingestion log (null, NaN: 0)."""
    return int(value) if value is not None and pd.notna(value) else 0


def data_quality(settings: Settings, day: date, version: str | None, cfg: dict) -> list[Row]:
    """Per landing source: the quarantine rate, the volume against the trailing median, and a change of
    the landing schema (a new, missing or retyped column, against the contract's suite) as its own
    alert; and the day's feature validation (``ops.feature_validation``)."""
    from datetime import timedelta

    from jobs.data.contract import record_rules
    from jobs.data.landing import LANDING_SOURCES
    from jobs.platform import opslog

    c = cfg["data_quality"]
    rows = []
    for source in LANDING_SOURCES:
        attempt = opslog.latest_attempt(settings, source, day)
        if attempt is None or attempt["status"] != opslog.SUCCEEDED or not _count(attempt.get("rows_read")):
            why = "nothing ingested" if attempt is None else f"ingestion {attempt['status']}: {attempt.get('error')}"
            rows.append(Row("landing", source, "rows_read", 0.0, None, "alert", why))
        else:
            rate = _count(attempt["rows_quarantined"]) / _count(attempt["rows_read"])
            rows.append(
                Row(
                    "landing",
                    source,
                    "quarantine_rate",
                    rate,
                    c["quarantine_rate_alert"],
                    level(rate, c["quarantine_rate_warn"], c["quarantine_rate_alert"]),
                )
            )
            window = [day - timedelta(days=i) for i in range(1, c["volume_window_days"] + 1)]
            history = [
                _count(a["rows_accepted"])
                for a in opslog.latest_attempts(settings, source, window).values()
                if a["status"] == opslog.SUCCEEDED and _count(a["rows_accepted"])
            ]
            if len(history) >= c["volume_min_days"]:
                median = float(np.median(history))
                accepted = _count(attempt["rows_accepted"])
                ratio = max(accepted / median, median / accepted) if accepted else float("inf")
                detail = json.dumps({"accepted": accepted, "median": median, "days": len(history)})
                rows.append(
                    Row(
                        "landing",
                        source,
                        "volume_ratio",
                        min(ratio, 1e9),
                        c["volume_ratio_alert"],
                        level(ratio, c["volume_ratio_warn"], c["volume_ratio_alert"]),
                        detail,
                    )
                )
        path = settings.storage.landing_file(source, day)
        if path is not None:
            contract = list(record_rules(source).required)
            retyped = (
                retyped_columns(attempt.get("validation_summary"), contract, c["retyped_share"])
                if attempt is not None and attempt["status"] == opslog.SUCCEEDED
                else {}
            )
            change = schema_change(landing_columns(path), contract, retyped)
            n = len(change["new"]) + len(change["missing"]) + len(change["retyped"])
            rows.append(
                Row("landing", source, "schema_change", float(n), 0.0, "alert" if n else "ok", json.dumps(change))
            )
    rows.append(_feature_validation_row(settings, day))
    return rows


def _feature_validation_row(settings: Settings, day: date) -> Row:
    from jobs.features.validate import read_validation

    outcome = read_validation(settings, day)
    if outcome is None:
        return Row("features", "transaction_features", "failed_expectations", None, 0.0, "skipped", "not validated")
    failed = int(outcome["failed"])
    detail = outcome["failed_rules"] or json.dumps(
        {"rows": int(outcome["rows"]), "expectations": int(outcome["expectations"])}
    )
    return Row(
        "features",
        "transaction_features",
        "failed_expectations",
        float(failed),
        0.0,
        "alert" if failed else "ok",
        detail,
    )


def skew_rows(batch: pd.DataFrame, served_rows: pd.DataFrame, cfg: dict) -> list[Row]:
    """Training/serving skew: the served feature vectors against the batch features of the same
    transactions; the share of transactions with any feature differing (beyond float noise)."""
    both = served_rows.merge(batch, on="transaction_id", suffixes=("_served", ""))
    if both.empty:
        return [Row("served", "*", "matched_rows", 0.0, None, "skipped", "no served transaction in the batch")]
    differs = np.zeros(len(both), dtype=bool)
    per_feature = {}
    for name in FEATURE_NAMES:
        a = both[f"{name}_served"].to_numpy(dtype="float64", na_value=np.nan)
        b = both[name].to_numpy(dtype="float64", na_value=np.nan)
        bad = ~(np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b)))
        if bad.any():
            per_feature[name] = int(bad.sum())
        differs |= bad
    share = float(differs.mean())
    worst_features = dict(sorted(per_feature.items(), key=lambda kv: -kv[1])[:5])
    detail = json.dumps({"rows": len(both), "mismatching_features": worst_features})
    status = "alert" if share > cfg["max_mismatch_share"] else "ok"
    return [Row("served", "*", "mismatch_share", share, cfg["max_mismatch_share"], status, detail)]


def skew(settings: Settings, day: date, version: str | None, cfg: dict) -> list[Row]:
    """The day's served transactions (prediction log) against ``features.transaction_features``."""
    traffic = served(settings, day)
    if traffic.empty:
        return [Row("served", "*", "matched_rows", 0.0, None, "skipped", "no served traffic that day")]
    served_rows = traffic[["transaction_id", *FEATURE_NAMES]].drop_duplicates("transaction_id", keep="last")
    batch = _read(settings, FEATURES_TABLE, ["transaction_id", *FEATURE_NAMES], "batch_date", day)
    return skew_rows(batch, served_rows, cfg["skew"])


def staleness(settings: Settings, day: date, version: str | None, cfg: dict) -> list[Row]:
    """Days from the version's training cutoff (the start of its test window: training labels are
    those known then) to the day. A fresh version is already about a test window plus a maturity old."""
    from jobs.platform.tracking import Tag, mlflow_client

    c = cfg["staleness"]
    if version is None:
        return [Row("model", "*", "days_since_cutoff", None, None, "skipped", "no champion yet")]
    client = mlflow_client(settings)
    tags = client.get_run(client.get_model_version(settings.mlflow.model_name, version).run_id).data.tags
    cutoff = tags.get(Tag.WINDOW_CUTOFF)
    if not cutoff:
        return [Row("model", "*", "days_since_cutoff", None, None, "skipped", "the version has no training cutoff tag")]
    days = float((day - date.fromisoformat(cutoff[:10])).days)
    status = level(days, c["days_warn"], c["days_alert"])
    return [
        Row("model", "*", "days_since_cutoff", days, float(c["days_alert"]), status, json.dumps({"cutoff": cutoff}))
    ]


def health(settings: Settings, day: date, version: str | None, cfg: dict) -> list[Row]:
    """The scoring service's day from the prediction log: volume, fallbacks, p50 and p99 latency against SLOs."""
    c = cfg["health"]
    frame = _read(settings, PREDICTION_LOG_TABLE, ["latency_ms", "path", "candidate_error"], "served_date", day)
    rows = [Row("served", "requests", "count", float(len(frame)), None, "ok" if len(frame) else "skipped")]
    if frame.empty:
        return rows
    errors = float(((frame["path"] == "fallback") | frame["candidate_error"].notna()).mean())
    p50, p99 = (float(np.percentile(frame["latency_ms"], q)) for q in (50, 99))
    return rows + [
        Row(
            "served",
            "requests",
            "error_rate",
            errors,
            c["max_error_rate"],
            "alert" if errors > c["max_error_rate"] else "ok",
        ),
        Row("served", "latency", "p50_ms", p50, c["p50_ms"], "alert" if p50 > c["p50_ms"] else "ok"),
        Row("served", "latency", "p99_ms", p99, c["p99_ms"], "alert" if p99 > c["p99_ms"] else "ok"),
    ]


CHECK_FUNCTIONS: dict[str, Callable[[Settings, date, str | None, dict], list[Row]]] = {
    "data_drift": data_drift,
    "prediction_drift": prediction_drift,
    "numerical_stability": numerical_stability,
    "performance": performance,
    "data_quality": data_quality,
    "skew": skew,
    "staleness": staleness,
    "health": health,
}


# ----------------------------------------------------------------------------------------- running


def record(settings: Settings, day: date, check: str, version: str | None, rows: list[Row]) -> int:
    """Replace day ``day``'s rows of ``check`` by ``rows`` (one commit); return the table version."""
    now = datetime.now(UTC)
    table = pa.Table.from_pylist(
        [
            {"check_date": day, "check_name": check, "model_version": version, "computed_at": now, **r.__dict__}
            for r in rows
        ],
        schema=CHECKS.schema,
    )
    return delta.overwrite_where(
        settings, CHECKS, table, f"check_date = '{day.isoformat()}' AND check_name = '{check}'"
    )


def run_checks(day: date | str, checks: list[str] | None = None, settings: Settings | None = None) -> dict:
    """Run ``checks`` (default: all) for ``day`` and record them; return each check's status and alerts."""
    settings = settings or get_settings()
    day = date.fromisoformat(str(day)[:10])
    cfg = load_monitoring_config(settings)
    version = day_version(settings, batch_scores(settings, day))
    summary: dict = {"date": day.isoformat(), "model_version": version, "checks": {}}
    for name in checks or list(CHECK_FUNCTIONS):
        t0 = time.time()
        rows = CHECK_FUNCTIONS[name](settings, day, version, cfg)
        record(settings, day, name, version, rows)
        alerts = [f"{r.source}:{r.subject}:{r.metric}" for r in rows if r.status == "alert"]
        summary["checks"][name] = {
            "status": worst(r.status for r in rows),
            "alerts": alerts,
            "seconds": round(time.time() - t0, 2),
        }
        log.info("monitoring %s %s: %s", day, name, json.dumps(summary["checks"][name]))
    return summary


def days_to_check(requested: str | None, events: list[dict], settings: Settings | None = None) -> list[str]:
    """The days a ``monitor_model`` run checks: the one requested, else those the scores' Asset events
    name (``batch_score`` sets ``days``), else the latest scored day."""
    if requested:
        return [date.fromisoformat(requested).isoformat()]
    days = sorted({d for e in events if e for d in e.get("days", [])})
    if days:
        return days
    settings = settings or get_settings()
    from deltalake import DeltaTable

    if not delta.exists(settings, SCORES_TABLE):
        raise ValueError(f"{SCORES_TABLE} does not exist: run batch_score first")
    scored = DeltaTable(str(delta.path(settings, SCORES_TABLE))).to_pyarrow_table(columns=["batch_date"]).column(0)
    if not len(scored):
        raise ValueError(f"{SCORES_TABLE} is empty: run batch_score first")
    return [max(scored.to_pylist()).isoformat()]


def read_checks(settings: Settings | None = None, day: date | None = None) -> pd.DataFrame:
    """The recorded checks (of one day, or all)."""
    settings = settings or get_settings()
    filters = None if day is None else [("check_date", "=", day)]
    return delta.read(settings, CHECKS, filters=filters).to_pandas()


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m jobs.monitoring.checks", description=__doc__.split("\n")[0])
    parser.add_argument("--date", required=True, help="the day to check (YYYY-MM-DD)")
    parser.add_argument("--check", action="append", choices=sorted(CHECK_FUNCTIONS), help="one check (repeatable)")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(run_checks(args.date, args.check), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
