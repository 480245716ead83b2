"""Monitoring checks on the shared history: the champion's reference against a day's batch (no JVM).

The drift statistics themselves are tested on samples with known answers in tests/monitoring; here
the checks run on real feature rows, with drift injected where the answer must be an alert.
"""

from __future__ import annotations

import json
from datetime import timedelta
from html import escape as html_escape
from pathlib import Path

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


def _with_card_testing(spark, history_cfg, day, settings, copy_settings) -> int:
    """Day ``day`` of a copy of the lakehouse as if the simulator's card-testing wave
    (``new_fraud_pattern``) had started that day: the wave's transactions are added to the day's
    rows and the day's features recomputed by the feature job's own code (``compute_features``),
    then written to the copy's ``features.transaction_features``. Returns the wave's size."""
    import dataclasses

    import pandas as pd
    from deltalake import DeltaTable, write_deltalake
    from pyspark.sql import functions as F

    from jobs.data.simulate import card_testing_wave
    from jobs.features.build import FEATURES_TABLE, SOURCE_TABLE, compute_features
    from jobs.features.registry import lookback_days
    from jobs.platform import delta

    cfg = dataclasses.replace(history_cfg, drift="new_fraud_pattern", drift_start=day)
    cust, seconds, terminal, amount = card_testing_wave(cfg, day, cfg.n_terminals)
    delay = settings.features.label_delay_days
    start = pd.Timestamp(day)
    lo = start - pd.Timedelta(days=lookback_days(delay))
    history = (
        spark.table(SOURCE_TABLE)
        .where((F.col("tx_datetime") > F.lit(lo.to_pydatetime())) & (F.col("batch_date") <= F.lit(day)))
        .select(
            "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "report_known_at", "batch_date"
        )
        .withColumn("is_target", F.col("batch_date") == F.lit(day))
    )
    wave = pd.DataFrame(
        {
            "transaction_id": [f"{day:%Y%m%d}9{i:07d}" for i in range(len(cust))],
            "tx_datetime": start + pd.to_timedelta(seconds, unit="s"),
            "customer_id": cust.astype(str),
            "terminal_id": terminal.astype(str),
            "tx_amount": amount,
            "report_known_at": pd.NaT,
            "batch_date": day,
            "is_target": True,
        }
    )
    wave_df = spark.createDataFrame(wave).select(*[F.col(f.name).cast(f.dataType) for f in history.schema.fields])
    features = compute_features(history.unionByName(wave_df), delay).where(F.col("batch_date") == F.lit(day))
    path = str(delta.path(copy_settings, FEATURES_TABLE))
    stored = DeltaTable(path).to_pyarrow_table(filters=[("batch_date", "=", day)])
    frame = features.toPandas()
    frame["feature_set_version"] = stored.column("feature_set_version")[0].as_py()
    frame["computed_at"] = pd.Timestamp.now(tz="UTC")
    table = pa.Table.from_pandas(frame[stored.schema.names], preserve_index=False).cast(stored.schema)
    assert table.num_rows == stored.num_rows + len(wave)
    write_deltalake(path, table, mode="overwrite", predicate=f"batch_date = '{day}'")
    return len(wave)


def test_monitor_model_flags_a_card_testing_wave_mails_it_and_requests_a_retraining(
    load_dag, airflow_db, champion, serving_settings, history_backfill, spark, tmp_path, monkeypatch
):
    """The drift scenario, small, through dag.test(): a copy of the lakehouse where the simulator's
    card-testing wave (new_fraud_pattern) starts on the replayed day. The day before has no wave;
    on the wave's day the data drift alerts on the features it moves (at the thresholds as shipped),
    the alert reaches the local SMTP receiver, ``monitoring.retrain_request`` is emitted with the
    reason (an Asset event in Airflow's DB), and the day's report is logged to the champion's run."""
    import email
    import shutil
    import socket

    from aiosmtpd.controller import Controller
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from jobs.config import get_settings
    from jobs.monitoring.alerts import read_alerts
    from jobs.platform.tracking import mlflow_client
    from jobs.scoring.batch import score_day

    clean_day, wave_day = REPLAY_DAY.fromordinal(REPLAY_DAY.toordinal() - 1), REPLAY_DAY
    copy_dir = tmp_path / "data"
    shutil.copytree(serving_settings.storage.data_dir, copy_dir, ignore=shutil.ignore_patterns("training", "mlflow"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(copy_dir))
    monkeypatch.setenv("PIPELINE_ALERT_EMAIL", "fraud-ops@example.com")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f"smtp://127.0.0.1:{port}?disable_tls=true&disable_ssl=true&from_email=airflow%40example.com",
    )
    get_settings.cache_clear()
    try:
        copy_settings = get_settings()
        wave = _with_card_testing(spark, history_backfill[0], wave_day, serving_settings, copy_settings)
        for day in (clean_day, wave_day):
            score_day(day, copy_settings)
        dag = load_dag("monitor_model")
        drifted, requests = {}, {}
        for day in (clean_day, wave_day):
            run = dag.test(run_conf={"date": day.isoformat()})
            states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
            assert {k: v for k, v in states.items() if k != "request_retraining"} == dict.fromkeys(
                set(states) - {"request_retraining"}, "success"
            ), states
            checks = read_checks(copy_settings, day)
            assert set(checks["check_name"]) == set(CHECK_FUNCTIONS)
            verdict = checks[(checks["metric"] == "drifted_features") & (checks["source"] == "batch")].iloc[0]
            drifted[day] = (verdict["status"], set(filter(None, (verdict["detail"] or "").split(", "))))
            request = next(ti for ti in run.get_task_instances() if ti.task_id == "request_retraining")
            requests[day] = (
                request.xcom_pull(task_ids="request_retraining") if str(request.state) == "success" else None
            )
        moved = {"tx_amount", "tx_during_night", "customer_amount_ratio_30d"}
        assert not moved & drifted[clean_day][1], drifted[clean_day]
        assert drifted[wave_day][0] == "alert" and moved <= drifted[wave_day][1], (wave, drifted[wave_day])
        assert requests[wave_day].startswith(f"{wave_day}: ") and "data_drift on batch" in requests[wave_day]
        alerts = read_alerts(copy_settings, wave_day)
        assert alerts["retrain"].any() and (alerts["check_name"] == "data_drift").any()
        with create_session() as session:
            events = session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.name == "monitoring.retrain_request")
            ).all()
        assert any((e.extra or {}).get("reason") == requests[wave_day] for e in events)
        from jobs.release import audit

        trail = [r for r in audit.read(settings=copy_settings) if r["action"] == "retrain_request"]
        assert [(r["decision"], r["reason"]) for r in trail][-1] == ("requested", requests[wave_day])
        # the day's report: Evidently's drift page and the trends, logged to the champion's run
        client = mlflow_client(copy_settings)
        run_id = client.get_model_version(copy_settings.mlflow.model_name, champion["version"]).run_id
        logged = {f.path for f in client.list_artifacts(run_id, f"monitoring/{wave_day}")}
        assert logged == {f"monitoring/{wave_day}/index.html", f"monitoring/{wave_day}/drift.html"}
        page = (copy_dir / "monitoring" / "reports" / str(wave_day) / "index.html").read_text()
        assert "Evidently drift report" in page and "Drifted features (batch)" in page and "<img" in page
    finally:
        controller.stop()
        get_settings.cache_clear()
    mails = {m["Subject"]: m for m in map(email.message_from_string, inbox.messages)}
    mail = next(m for subject, m in mails.items() if subject.endswith(f"on {wave_day}"))
    assert mail["To"] == "fraud-ops@example.com"
    body = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    assert "drifted_features" in body and "tx_during_night" in body


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
        assert change.status == "alert"
        assert json.loads(change.detail) == {"new": ["amount"], "missing": ["tx_amount"], "retyped": []}
        assert schema_change(["a", "b"], ["a", "b"]) == {"new": [], "missing": [], "retyped": []}
    finally:
        target.unlink()


def test_a_retyped_landing_column_alerts(serving_settings, history_backfill, tmp_path, monkeypatch):
    """A new day's file whose amounts arrive as text ("EUR 12.50"): the column is there, of another
    type. Ingested for real (into a copy of the lakehouse): every row quarantined, and the schema
    change names the retyped column."""
    import dataclasses
    import shutil

    from jobs.config import get_settings
    from jobs.data.ingest import ingest
    from jobs.data.simulate import simulate
    from jobs.monitoring.checks import data_quality, retyped_columns

    day = REPLAY_DAY + timedelta(days=1)
    copy_dir = tmp_path / "data"
    shutil.copytree(serving_settings.storage.data_dir, copy_dir, ignore=shutil.ignore_patterns("training", "mlflow"))
    simulate(dataclasses.replace(history_backfill[0], start_date=day, days=1), tmp_path / "sim")
    lines = (tmp_path / "sim" / "transactions" / f"{day}.csv").read_text().splitlines()
    header = lines[0].split(",")
    amount = header.index("tx_amount")
    retyped = [lines[0]] + [
        ",".join(f"EUR {v}" if i == amount else v for i, v in enumerate(line.split(","))) for line in lines[1:]
    ]
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(copy_dir))
    get_settings.cache_clear()
    try:
        s = get_settings()
        target = s.storage.landing_dir / "transactions" / f"{day}.csv"
        target.write_text("\n".join(retyped) + "\n")
        result = ingest(day, "transactions", settings=s, run_id="retyped")
        assert result.rows_accepted == 0 and result.rows_quarantined == len(lines) - 1
        rows = {(r.subject, r.metric): r for r in data_quality(s, day, None, load_monitoring_config(s))}
        change = rows[("transactions", "schema_change")]
        assert change.status == "alert"
        assert json.loads(change.detail) == {"new": [], "missing": [], "retyped": ["tx_amount"]}
        assert rows[("transactions", "quarantine_rate")].status == "alert"
    finally:
        get_settings.cache_clear()
    # a file with a few bad amounts is not a retyped column: the share decides
    summary = json.dumps({"rows": 1000, "rules": {"tx_amount_is_numeric": 12, "tx_datetime_parsable": 600}})
    assert retyped_columns(summary, ["tx_amount", "tx_datetime"], 0.5) == {"tx_datetime": 0.6}


def test_explain_decision_names_the_version_its_score_features_and_lineage(serving_settings, champion, capsys):
    """The auditor's question, on a batch-scored transaction: the version, the score and the features
    it saw (equal to the feature table's), the version's gate and links; an unknown id is an error."""
    from jobs.governance.__main__ import main
    from jobs.governance.explain import explain_decision
    from jobs.platform import delta
    from jobs.scoring.batch import SCORES, score_day

    score_day(REPLAY_DAY, serving_settings)
    scores = delta.read(serving_settings, SCORES, filters=[("batch_date", "=", REPLAY_DAY)]).to_pandas()
    row = scores.sort_values("score").iloc[-1]
    out = explain_decision(row["transaction_id"], serving_settings)
    (decision,) = out["decisions"]
    assert decision["source"].startswith("batch") and decision["model_version"] == str(champion["version"])
    assert decision["score"] == pytest.approx(row["score"]) and decision["alert"] == bool(row["alert"])
    from tables import rows

    (stored,) = rows(
        serving_settings, "features.transaction_features", REPLAY_DAY, transaction_id=row["transaction_id"]
    )
    assert decision["features"] == pytest.approx({f: float(stored[f]) for f in FEATURE_NAMES})
    lineage = out["versions"][str(champion["version"])]
    assert lineage["gate"]["decision"] and lineage["run_id"] in lineage["links"]["model_card"]
    assert out["summary"].startswith(f"transaction {row['transaction_id']}: scored 1 time(s); first by version")
    assert main(["explain-decision", str(row["transaction_id"])]) == 0
    assert json.loads(capsys.readouterr().out)["transaction_id"] == str(row["transaction_id"])
    assert main(["explain-decision", "no-such-transaction"]) == 1
    assert "was never scored" in capsys.readouterr().err


def test_the_models_page_shows_the_champion_its_gate_and_its_monitoring_behind_the_login(
    serving_settings, champion, airflow_db
):
    """The plugin's page through the api-server app (the real auth manager): anonymous 401, a viewer
    sees every version with aliases and gate reasons, the champion's checks and the links."""
    import re

    from airflow.api_fastapi.app import create_app
    from airflow.configuration import conf
    from fastapi.testclient import TestClient

    from jobs.governance.models_page import models_overview
    from jobs.scoring.batch import score_day

    score_day(REPLAY_DAY, serving_settings)
    run_checks(REPLAY_DAY, ["data_drift", "performance", "staleness"], serving_settings)
    data = models_overview(serving_settings)
    version = str(champion["version"])
    assert data["champion"] == version and "champion" in data["versions"][0]["aliases"]
    assert data["monitoring"]["last_day"] == str(REPLAY_DAY)
    assert {c["check"] for c in data["monitoring"]["checks"]} >= {"data_drift", "performance", "staleness"}
    with TestClient(create_app("core"), base_url="http://localhost") as client:
        assert client.get("/models/").status_code == 401
        passwords = json.loads(Path(conf.get("core", "simple_auth_manager_passwords_file")).read_text())
        token = client.post("/auth/token", json={"username": "viewer", "password": passwords["viewer"]}).json()
        page = client.get("/models/", cookies={"_token": token["access_token"]})
    assert page.status_code == 200, page.text
    body = page.text
    assert re.search(rf"id='champion'>v{version}<", body) and "signed in as viewer" in body
    gate_reasons = data["versions"][0]["gate_reasons"]
    assert all(html_escape(r) in body for r in gate_reasons)
    assert f"run_uuid={champion['run_id']}&amp;path=model_card/model_card.html" in body
    assert "<td>data_drift</td>" in body and f"monitoring/{REPLAY_DAY}/index.html" in body
