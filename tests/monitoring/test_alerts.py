"""Alert plumbing without data: which days a run checks, the retraining reason, the mail."""

from __future__ import annotations

import pandas as pd

from jobs.monitoring.alerts import RETRAIN_CHECKS, alert_rows, message, retrain_reason
from jobs.monitoring.checks import days_to_check, level, worst


def _alert(check, retrain, detail="tx_amount, customer_avg_amount_7d"):
    return {
        "check_name": check,
        "source": "batch",
        "subject": "*",
        "metric": "drifted_features",
        "value": 2.0,
        "threshold": 2.0,
        "detail": detail,
        "retrain": retrain,
    }


def test_days_come_from_the_request_else_from_the_scores_events():
    assert days_to_check("2026-01-02", [{"days": ["2026-01-05"]}]) == ["2026-01-02"]
    events = [{"days": ["2026-01-03", "2026-01-02"]}, None, {"days": ["2026-01-03"]}]
    assert days_to_check(None, events) == ["2026-01-02", "2026-01-03"]


def test_only_drift_performance_and_staleness_ask_for_a_retraining():
    assert {"data_drift", "prediction_drift", "performance", "staleness"} == RETRAIN_CHECKS
    assert retrain_reason([_alert("numerical_stability", False), _alert("skew", False)]) is None
    reason = retrain_reason([_alert("data_drift", True), _alert("health", False)])
    assert reason == "data_drift on batch: tx_amount, customer_avg_amount_7d (drifted_features 2)"


def test_levels_and_the_worst_status():
    assert [level(v, 0.1, 0.25) for v in (0.05, 0.1, 0.3, None, float("nan"))] == [
        "ok",
        "warn",
        "alert",
        "skipped",
        "skipped",
    ]
    assert worst(["ok", "skipped", "warn"]) == "warn" and worst([]) == "skipped"


def test_the_mail_escapes_what_it_shows():
    subject, body = message(
        "2026-01-02", [_alert("data_drift", True, detail="<script>{{ conn.smtp_default.password }}")]
    )
    assert subject == "[fraud model] 1 monitoring alert(s) on 2026-01-02"
    assert "&lt;script&gt;" in body and "<script>" not in body
    assert "{" not in body and "}" not in body  # the notifier renders it as a Jinja template


def _check(check, metric, status, subject="*"):
    return {"check_name": check, "source": "batch", "subject": subject, "metric": metric, "status": status}


def test_one_drifting_feature_is_a_warning_and_a_drift_alerts_once():
    one = pd.DataFrame(
        [
            _check("data_drift", "psi", "alert", "tx_amount"),
            _check("data_drift", "drifted_features", "warn"),
            _check("numerical_stability", "bad_score_share", "alert", "score"),
        ]
    )
    assert list(alert_rows(one)["check_name"]) == ["numerical_stability"]
    two = pd.DataFrame(
        [
            _check("data_drift", "psi", "alert", "tx_amount"),
            _check("data_drift", "ks_stat", "alert", "customer_nb_tx_7d"),
            _check("data_drift", "drifted_features", "alert"),
        ]
    )
    assert alert_rows(two)[["check_name", "metric"]].values.tolist() == [["data_drift", "drifted_features"]]


def test_a_retraining_request_is_held_while_the_newest_version_is_fresh(tmp_path, monkeypatch):
    """The cooldown reads the registry: the newest version's labels-as-of day decides, promoted or not."""
    from datetime import date

    import yaml

    from jobs.config import get_settings, load_monitoring_config
    from jobs.monitoring.alerts import retrain_cooldown
    from jobs.platform.tracking import Tag, mlflow_client

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    get_settings.cache_clear()
    try:
        s = get_settings()
        day = date(2026, 3, 10)
        assert retrain_cooldown(day, s) is None  # no registered model yet
        client = mlflow_client(s)
        client.create_registered_model(s.mlflow.model_name)
        for as_of in ("2026-03-01T00:00:00", "2026-03-09T00:00:00"):  # trained on data up to Feb 28 / Mar 8
            client.create_model_version(s.mlflow.model_name, str(tmp_path), tags={Tag.WINDOW_LABEL_AS_OF: as_of})
        held = retrain_cooldown(day, s)
        assert held and "version 2" in held and "2026-03-08" in held
        assert retrain_cooldown(date(2026, 3, 11), s) is None  # 3 days later: the cooldown is over
        cfg = load_monitoring_config(s)
        cfg["retraining"]["cooldown_days"] = 0
        (tmp_path / "monitoring.yaml").write_text(yaml.safe_dump(cfg))
        monkeypatch.setenv("PIPELINE_MONITORING_CONFIG", str(tmp_path / "monitoring.yaml"))
        get_settings.cache_clear()
        assert retrain_cooldown(day, get_settings()) is None
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        mlflow_client(get_settings())  # MLflow's global URIs back on the session's store
