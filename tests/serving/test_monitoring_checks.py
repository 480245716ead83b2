"""Monitoring checks on the shared history: the champion's reference against a day's batch (no JVM).

The drift statistics themselves are tested on samples with known answers in tests/monitoring; here
the checks run on real feature rows, with drift injected where the answer must be an alert.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from jobs.config import load_monitoring_config
from jobs.evaluation.profile import build_reference
from jobs.features.registry import FEATURE_NAMES
from jobs.monitoring.checks import CHECK_FUNCTIONS, batch_features, feature_drift_rows, read_checks, run_checks

from replay import REPLAY_DAY


@pytest.fixture(scope="module")
def halves(serving_settings):
    """The replayed day's features split at random in two samples of the same world."""
    frame = batch_features(serving_settings, REPLAY_DAY)
    mask = np.random.default_rng(3).random(len(frame)) < 0.5
    return frame[mask].reset_index(drop=True), frame[~mask].reset_index(drop=True)


def _drifted(rows, source="batch"):
    summary = next(r for r in rows if r.metric == "drifted_features" and r.source == source)
    return summary.status, set(filter(None, (summary.detail or "").split(", ")))


def test_a_second_sample_of_the_same_day_does_not_drift(serving_settings, halves):
    cfg = load_monitoring_config(serving_settings)["data_drift"]
    first, second = halves
    reference = build_reference(first, np.zeros(len(first)), None, FEATURE_NAMES)
    rows = feature_drift_rows(reference, second, "batch", cfg)
    assert _drifted(rows) == ("ok", set())
    assert {r.subject for r in rows if r.metric in ("psi", "p1_change")} == set(FEATURE_NAMES)


def test_shifted_amounts_and_new_terminals_drift_on_their_features(serving_settings, halves):
    cfg = load_monitoring_config(serving_settings)["data_drift"]
    first, second = halves
    reference = build_reference(first, np.zeros(len(first)), None, FEATURE_NAMES)
    # amount_shift: every amount 60% higher, and so the customers' mean amounts
    shifted = second.copy()
    amount_features = ["tx_amount"] + [f for f in FEATURE_NAMES if f.startswith("customer_avg_amount")]
    shifted[amount_features] *= 1.6
    status, drifted = _drifted(feature_drift_rows(reference, shifted, "batch", cfg))
    assert status == "alert" and "tx_amount" in drifted
    assert all(f in amount_features for f in drifted), drifted
    # new_terminals: half the transactions at terminals without history (their cold-start values)
    fresh = second.copy()
    terminal_features = [f for f in FEATURE_NAMES if f.startswith("terminal_")]
    new = np.random.default_rng(5).random(len(fresh)) < 0.5
    for f in terminal_features:
        fresh.loc[new, f] = first[f].max() if f == "terminal_days_since_known_fraud" else 0.0
    status, drifted = _drifted(feature_drift_rows(reference, fresh, "batch", cfg))
    assert status == "alert" and drifted and all(f in terminal_features for f in drifted), drifted
    assert any(f.startswith("terminal_nb_tx") for f in drifted)


def test_the_days_checks_are_recorded_and_nan_scores_alert(serving_settings, champion):
    from jobs.platform import delta
    from jobs.scoring.batch import SCORES, score_day

    s = serving_settings
    score_day(REPLAY_DAY, s)
    summary = run_checks(REPLAY_DAY, settings=s)
    assert summary["model_version"] == champion["version"]
    assert summary["checks"]["numerical_stability"]["status"] == "ok"
    assert summary["checks"]["prediction_drift"]["status"] in ("ok", "warn", "alert")
    rows = read_checks(s, REPLAY_DAY)
    drift = rows[(rows.check_name == "data_drift") & (rows.source == "batch")]
    assert set(drift[drift.metric.isin(["psi", "p1_change"])].subject) == set(FEATURE_NAMES)
    assert set(rows.status) <= {"ok", "warn", "alert", "skipped"} and (rows.model_version == champion["version"]).all()
    # re-running the day replaces its rows
    run_checks(REPLAY_DAY, settings=s)
    assert len(read_checks(s, REPLAY_DAY)) == len(rows)

    # a scoring bug: NaN scores in the day's batch
    scores = delta.read(s, SCORES, filters=[("batch_date", "=", REPLAY_DAY)]).to_pandas()
    scores.loc[scores.index[:3], "score"] = np.nan

    table = pa.Table.from_pandas(scores, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("score"), "score", pa.array(scores["score"].to_numpy()))
    delta.overwrite_where(s, SCORES, table, f"batch_date = '{REPLAY_DAY}'")  # NaN values, not nulls
    try:
        bad = run_checks(REPLAY_DAY, ["numerical_stability"], settings=s)
        assert bad["checks"]["numerical_stability"] == {**bad["checks"]["numerical_stability"], "status": "alert"}
        assert "batch:score:bad_score_share" in bad["checks"]["numerical_stability"]["alerts"]
    finally:
        score_day(REPLAY_DAY, s)


class _Inbox:
    """An SMTP receiver (aiosmtpd) that keeps the messages it gets."""

    def __init__(self):
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def test_monitor_model_dag_mails_alerts_and_requests_a_retraining(
    load_dag, airflow_db, champion, serving_settings, tmp_path, monkeypatch
):
    """dag.test() on two days: checks recorded, alerts in monitoring.alerts and at the local SMTP
    receiver, and the retrain request emitted with its reason (thresholds lowered so drift alerts)."""
    import socket

    import yaml
    from aiosmtpd.controller import Controller

    from jobs.config import get_settings
    from jobs.monitoring.alerts import read_alerts
    from jobs.scoring.batch import score_day

    days = [REPLAY_DAY.fromordinal(REPLAY_DAY.toordinal() - 1), REPLAY_DAY]
    for day in days:
        score_day(day, serving_settings)
    strict = load_monitoring_config(serving_settings)
    strict["data_drift"].update(psi_warn=0.0, psi_alert=0.001, min_drifted_features=1)  # any shift is drift
    config = tmp_path / "monitoring.yaml"
    config.write_text(yaml.safe_dump(strict))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("PIPELINE_MONITORING_CONFIG", str(config))
    monkeypatch.setenv("PIPELINE_ALERT_EMAIL", "fraud-ops@example.com")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f"smtp://127.0.0.1:{port}?disable_tls=true&disable_ssl=true&from_email=airflow%40example.com",
    )
    get_settings.cache_clear()
    try:
        dag = load_dag("monitor_model")
        for day in days:
            run = dag.test(run_conf={"date": day.isoformat()})
            states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
            assert set(states.values()) == {"success"}, states
            request = next(ti for ti in run.get_task_instances() if ti.task_id == "request_retraining")
            assert "data_drift on batch" in request.xcom_pull(task_ids="request_retraining")
            alerts = read_alerts(get_settings(), day)
            assert len(alerts) >= 1 and alerts["retrain"].any()
            assert set(read_checks(get_settings(), day)["check_name"]) == set(CHECK_FUNCTIONS)
        # the day's report: Evidently's drift page and the trends, logged to the champion's run
        from jobs.platform.tracking import mlflow_client

        client = mlflow_client(get_settings())
        run_id = client.get_model_version(get_settings().mlflow.model_name, champion["version"]).run_id
        logged = {f.path for f in client.list_artifacts(run_id, f"monitoring/{days[-1]}")}
        assert logged == {f"monitoring/{days[-1]}/index.html", f"monitoring/{days[-1]}/drift.html"}
        page = (get_settings().storage.data_dir / "monitoring" / "reports" / str(days[-1]) / "index.html").read_text()
        assert "Evidently drift report" in page and "Drifted features (batch)" in page and "<img" in page
    finally:
        controller.stop()
        get_settings.cache_clear()
    import email

    mails = [email.message_from_string(m) for m in inbox.messages]
    assert [m["Subject"].endswith(f"on {day}") for m, day in zip(mails, days, strict=True)] == [True, True]
    assert all(m["To"] == "fraud-ops@example.com" for m in mails)
    body = next(p for p in mails[0].walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    assert "drifted_features" in body and "data_drift" in body


def test_delayed_label_performance_equals_the_evaluation_modules_and_flags_concept_drift(serving_settings, champion):
    """The matured day's metrics are the evaluation module's on the same rows (scores joined with the
    labels the mart holds now); below the offline metrics with undrifted inputs, it is concept drift."""
    from datetime import timedelta

    from deltalake import DeltaTable

    from jobs.config import load_training_config
    from jobs.evaluation.metrics import card_precision_at_k, threshold_free
    from jobs.monitoring.checks import Row, performance, record
    from jobs.platform import delta
    from jobs.platform.tracking import mlflow_client
    from jobs.scoring.batch import SCORES, known_compromised, score_day

    s = serving_settings
    matured = REPLAY_DAY - timedelta(days=s.data.label_maturity_days)
    score_day(matured, s)
    cfg = load_monitoring_config(s)
    rows = performance(s, REPLAY_DAY, champion["version"], cfg)
    online = {r.subject: r.value for r in rows if r.metric == "online"}

    # the same rows, built here from the tables
    scores = delta.read(s, SCORES, filters=[("batch_date", "=", matured)]).to_pandas()
    fct = DeltaTable(str(delta.path(s, "marts.fct_transactions"))).to_pandas(
        columns=["transaction_id", "label_status"], filters=[("batch_date", "=", matured)]
    )
    frame = scores.merge(fct[fct["label_status"] != "pending"], on="transaction_id")
    frame["label"] = (frame["label_status"] == "fraud").astype(int)
    frame["tx_date"] = matured
    assert frame["label"].sum() > 0 and len(frame) >= cfg["performance"]["min_rows"]
    expected = threshold_free(frame["label"], frame["score"])  # ranking metrics: every labelled row
    assert online["auc"] == pytest.approx(expected["auc"], abs=1e-12)
    assert online["average_precision"] == pytest.approx(expected["average_precision"], abs=1e-12)
    eligible = frame[~frame["customer_id"].isin(known_compromised(s, matured))]  # Card Precision@k drops them
    k = load_training_config(s)["evaluation"]["top_k"]
    assert online[f"card_precision_at_{k}"] == card_precision_at_k(eligible, eligible["score"].to_numpy(), k)["mean"]

    # offline metrics far above what the day shows, and that day's inputs checked without drift
    client = mlflow_client(s)
    run_id = client.get_model_version(s.mlflow.model_name, champion["version"]).run_id
    client.log_metric(run_id, "test_auc", 0.999)
    record(s, matured, "data_drift", champion["version"], [Row("batch", "*", "drifted_features", 0.0, 2.0, "ok")])
    rows = performance(s, REPLAY_DAY, champion["version"], cfg)
    status = {(r.subject, r.metric): r.status for r in rows}
    assert status[("auc", "online")] == "alert" and status[("*", "concept_drift")] == "alert"
    # the same fall with drifted inputs is data drift, not concept drift
    record(s, matured, "data_drift", champion["version"], [Row("batch", "*", "drifted_features", 3.0, 2.0, "alert")])
    rows = performance(s, REPLAY_DAY, champion["version"], cfg)
    assert {(r.subject, r.metric): r.status for r in rows}[("*", "concept_drift")] == "ok"


def test_skew_between_served_and_batch_features_is_detected(serving_settings):
    """The served vectors equal the batch features: no skew; a copy of the log with one feature off
    for a tenth of the transactions: an alert naming it."""
    from jobs.monitoring.checks import FEATURES_TABLE, _read, skew_rows

    cfg = load_monitoring_config(serving_settings)["skew"]
    batch = _read(serving_settings, FEATURES_TABLE, ["transaction_id", *FEATURE_NAMES], "batch_date", REPLAY_DAY)
    served_log = batch.copy()
    (clean,) = skew_rows(batch, served_log, cfg)
    assert (clean.metric, clean.value, clean.status) == ("mismatch_share", 0.0, "ok")
    skewed = served_log.copy()
    off = np.random.default_rng(2).random(len(skewed)) < 0.1
    skewed.loc[off, "customer_nb_tx_1d"] += 1  # e.g. the online store missed a transaction
    (row,) = skew_rows(batch, skewed, cfg)
    assert row.status == "alert" and row.value == pytest.approx(off.mean())
    assert json.loads(row.detail)["mismatching_features"] == {"customer_nb_tx_1d": int(off.sum())}


def test_a_renamed_landing_column_alerts(serving_settings, champion):
    """A landing file whose amount column was renamed: a schema change (one new, one missing column)."""
    from jobs.monitoring.checks import data_quality, landing_columns, schema_change

    s = serving_settings
    cfg = load_monitoring_config(s)
    normal = {(r.subject, r.metric): r for r in data_quality(s, REPLAY_DAY, None, cfg)}
    assert normal[("transactions", "schema_change")].status == "ok"
    assert 0 <= normal[("transactions", "quarantine_rate")].value < 0.05
    day = REPLAY_DAY + timedelta(days=1)  # a day outside the history: its file is ours to write
    source = s.storage.landing_file("transactions", REPLAY_DAY)
    target = source.with_name(f"{day}.csv")
    lines = source.read_text().splitlines(keepends=True)
    target.write_text(lines[0].replace("tx_amount", "amount") + "".join(lines[1:]))
    try:
        assert "amount" in landing_columns(target)
        rows = {(r.subject, r.metric): r for r in data_quality(s, day, None, cfg)}
        change = rows[("transactions", "schema_change")]
        assert change.status == "alert" and json.loads(change.detail) == {"new": ["amount"], "missing": ["tx_amount"]}
        assert schema_change(["a", "b"], ["a", "b"]) == {"new": [], "missing": []}
    finally:
        target.unlink()
