"""Alerts: the day's failed checks as rows of ``monitoring.alerts``, e-mailed, and retraining requests.

Every metric of ``monitoring.checks`` whose status is ``alert`` becomes one row of
``monitoring.alerts`` (re-running a day replaces its rows). When ``PIPELINE_ALERT_EMAIL`` is set, the
day's alerts are mailed in one message (:func:`message`) by ``monitor_model`` with Airflow's SMTP
provider (``SmtpNotifier``, connection ``smtp_default``, e.g. ``AIRFLOW_CONN_SMTP_DEFAULT``).

A drift, performance or staleness alert asks for a retraining (:func:`retrain_reason`): the inputs
or the world changed, so a model trained on recent data may do better, and the gate decides. Data
quality, skew, numerical and health alerts do not: they are data or code problems to fix, and a new
model would not fix them.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa

from jobs.config import Settings, get_settings
from jobs.monitoring.checks import read_checks
from jobs.platform import delta

log = logging.getLogger(__name__)

ALERTS = delta.TableSpec(
    "monitoring.alerts",
    pa.schema(
        [
            pa.field("alert_date", pa.date32(), nullable=False),
            pa.field("check_name", pa.string(), nullable=False),
            pa.field("model_version", pa.string()),
            pa.field("source", pa.string(), nullable=False),
            pa.field("subject", pa.string(), nullable=False),
            pa.field("metric", pa.string(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("threshold", pa.float64()),
            pa.field("detail", pa.string()),
            pa.field("retrain", pa.bool_(), nullable=False),  # does this alert ask for a retraining?
            pa.field("raised_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    ),
    ("alert_date",),
)
# checks whose alerts ask for a retraining: the data or the world moved away from the training data
RETRAIN_CHECKS = frozenset({"data_drift", "prediction_drift", "performance", "staleness"})
SUMMARY_METRICS = frozenset({"drifted_features"})  # a drift check's verdict row (its features are in detail)
DRIFT_CHECKS = frozenset({"data_drift"})  # checks whose per-feature rows roll up into a verdict row


def alert_rows(checks: pd.DataFrame) -> pd.DataFrame:
    """The rows of a day's checks that are alerts. A drift check alerts through its verdict row only
    (``drifted_features``, which names the features): one drifting feature is a warning, however
    far it moved, until ``min_drifted_features`` of them do."""
    failed = checks[checks["status"] == "alert"]
    per_feature = failed["check_name"].isin(DRIFT_CHECKS) & ~failed["metric"].isin(SUMMARY_METRICS)
    return failed[~per_feature]


def raise_alerts(day: date | str, settings: Settings | None = None, failed_checks=()) -> list[dict]:
    """Record the day's alerts (the ``alert`` rows of its checks, and one per check whose task failed:
    ``failed_checks``) in ``monitoring.alerts``; return them."""
    settings = settings or get_settings()
    day = date.fromisoformat(str(day)[:10])
    now = datetime.now(UTC)
    broken = [
        {
            "alert_date": day,
            "check_name": name,
            "model_version": None,
            "source": "monitoring",
            "subject": name,
            "metric": "check_failed",
            "value": None,
            "threshold": None,
            "detail": "the check's task failed: its numbers for the day are missing (see its log)",
            "retrain": False,
            "raised_at": now,
        }
        for name in failed_checks
    ]
    rows = broken + [
        {
            "alert_date": day,
            "check_name": r.check_name,
            "model_version": r.model_version,
            "source": r.source,
            "subject": r.subject,
            "metric": r.metric,
            "value": r.value,
            "threshold": r.threshold,
            "detail": r.detail,
            "retrain": r.check_name in RETRAIN_CHECKS,
            "raised_at": now,
        }
        for r in alert_rows(read_checks(settings, day)).itertuples()
    ]
    delta.overwrite_where(settings, ALERTS, pa.Table.from_pylist(rows, schema=ALERTS.schema), f"alert_date = '{day}'")
    log.info("monitoring %s: %d alert(s)", day, len(rows))
    return rows


def retrain_reason(alerts: list[dict]) -> str | None:
    """Why a retraining is requested (None: no drift or performance alert)."""
    reasons = [
        f"{a['check_name']} on {a['source']}: {a['detail'] or a['subject']} ({a['metric']} {a['value']:.3g})"
        for a in alerts
        if a["retrain"]
    ]
    return "; ".join(reasons) or None


def retrain_cooldown(day: date | str, settings: Settings | None = None) -> str | None:
    """Why a retraining request of ``day`` is held back (None: it may go).

    While a drift lasts it alerts every day; each request would train a model on one more day of
    data. A request is held while the newest registered version (champion or not: a rejected one
    counts, it saw the same data) has labels as of less than ``retraining.cooldown_days`` before
    ``day``. Alerts are raised and mailed all the same.
    """
    from jobs.config import load_monitoring_config
    from jobs.platform.tracking import Tag, mlflow_client

    settings = settings or get_settings()
    day = date.fromisoformat(str(day)[:10])
    cooldown = int(load_monitoring_config(settings).get("retraining", {}).get("cooldown_days", 0))
    if cooldown <= 0:
        return None
    name = settings.mlflow.model_name
    try:
        versions = mlflow_client(settings).search_model_versions(f"name = '{name}'")
    except Exception:  # no registered model yet: nothing to wait for
        return None
    trained = [
        (date.fromisoformat(v.tags[Tag.WINDOW_LABEL_AS_OF][:10]), v.version)
        for v in versions
        if v.tags.get(Tag.WINDOW_LABEL_AS_OF)
    ]
    if not trained:
        return None
    as_of, version = max(trained)
    age = (day - as_of).days + 1  # label_as_of is the day after the data's last day
    if age < cooldown:
        return (
            f"held: version {version} was trained on data up to {as_of - timedelta(days=1)} "
            f"({age} day(s) before {day}; retraining cooldown {cooldown} days)"
        )
    return None


def request_retraining(day: date | str, reason: str | None, settings: Settings | None = None) -> str | None:
    """Whether ``day``'s alerts request a retraining: the reason to send, or None (no such alert, or
    held by the cooldown). A request and a hold are rows of ``governance.audit_log``."""
    from jobs.release import audit

    if not reason:
        return None
    settings = settings or get_settings()
    held = retrain_cooldown(day, settings)
    audit.record(
        "retrain_request",
        "held" if held else "requested",
        "monitor_model",
        reason=reason if not held else f"{reason}; {held}",
        key=f"retrain_request/{str(day)[:10]}",
        settings=settings,
    )
    return None if held else reason


def read_alerts(settings: Settings | None = None, day: date | None = None) -> pd.DataFrame:
    settings = settings or get_settings()
    return delta.read(settings, ALERTS, filters=None if day is None else [("alert_date", "=", day)]).to_pandas()


def message(day: date | str, alerts: list[dict]) -> tuple[str, str]:
    """Subject and HTML body of the day's alert mail."""
    subject = f"[fraud model] {len(alerts)} monitoring alert(s) on {day}"
    lines = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(a[k]))}</td>"
            for k in ("check_name", "source", "subject", "metric", "value", "threshold", "detail")
        )
        + "</tr>"
        for a in alerts
    )
    head = "".join(f"<th>{h}</th>" for h in ("check", "source", "subject", "metric", "value", "threshold", "detail"))
    body = f"<p>Monitoring of {day}:</p><table><tr>{head}</tr>{lines}</table>"
    # The notifier renders its fields as Jinja templates: no brace from the data may reach it
    # (a landing column named "{{ ... }}" would be evaluated).
    return subject, body.replace("{", "&#123;").replace("}", "&#125;")


def recipients(settings: Settings | None = None) -> list[str]:
    """Who gets the alert mail (``PIPELINE_ALERT_EMAIL``); empty: nobody, alerts stay rows."""
    settings = settings or get_settings()
    return [r.strip() for r in settings.monitoring.alert_email.split(",") if r.strip()]
