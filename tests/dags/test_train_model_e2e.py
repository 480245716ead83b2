"""End to end: train_model through dag.test() on the simulated history.

Real Spark/Delta (pinned versions), real Ray Tune, real LightGBM, real MLflow (SQLite store and
registry), real Airflow human-in-the-loop. The first run must leave a champion that loads with
``models:/<name>@champion``; the second, on the same data versions and seed, must reproduce the same
model and metrics, which is then no improvement: the gate rejects it, promotion is skipped, the
champion stays. Two more runs pass the gate and wait for a person: one is rejected through
Airflow's REST API, the other gets no answer and takes the timeout default (Reject); neither serves.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.config import get_settings

TRIALS = 3

ENV = {
    "PIPELINE_LABEL_MATURITY_DAYS": "2",  # the history's frauds are reported within a day
    "PIPELINE_AUTO_APPROVE": "true",
    "PIPELINE_MIN_AUC": "0.6",  # a tiny history: the first-model floors are lowered, not skipped
    "PIPELINE_MIN_AP": "0.2",
    # 100 alerts a day on a few hundred cards cost more than their fraud, and the baseline ties the
    # model on so few cards: the business floors are lowered too, the checks still run
    "PIPELINE_MIN_NET_SAVINGS": "-1e9",
    "PIPELINE_BASELINE_CP_MARGIN": "-1",
    "PIPELINE_RAY_NUM_CPUS": "2",
}


@pytest.fixture
def training_settings(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _states(run):
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _xcom(run, task_id: str):
    """The return value a task of ``run`` pushed, read back from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def _awaiting_input(dag_id: str, task_id: str, deadline: float):
    """The task instance parked in AWAITING_INPUT (polled from the metadata DB), or None at the deadline."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    while time.monotonic() < deadline:
        with create_session() as session:
            ti = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                )
            ).first()
            if ti is not None:
                return ti.run_id, ti.trigger_timeout
        time.sleep(0.5)
    return None


def _respond_through_rest_api(
    dag_id: str, option: str, result: dict, users=("operator", "model_owner"), timeout_s: float = 900
) -> None:
    """People answer: each of ``users`` logs in to the Airflow API and PATCHes the approval task's HITL
    detail, in turn; ``result["status"]`` maps each to the HTTP status, ``body`` is the last answer."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    found = _awaiting_input(dag_id, "approve_promotion", time.monotonic() + timeout_s)
    if found is None:
        result["error"] = "approve_promotion never waited for input"
        return
    run_id, _ = found
    result["status"] = {}
    with TestClient(create_app("core"), base_url="http://localhost") as client:
        from airflow.configuration import conf

        passwords = json.loads(Path(conf.get("core", "simple_auth_manager_passwords_file")).read_text())
        detail = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve_promotion/-1/hitlDetails"
        for user in users:
            token = client.post("/auth/token", json={"username": user, "password": passwords[user]}).json()[
                "access_token"
            ]
            headers = {"Authorization": f"Bearer {token}"}
            if "request" not in result:
                result["request"] = client.get(detail, headers=headers).json()
            response = client.patch(detail, json={"chosen_options": [option], "params_input": {}}, headers=headers)
            result["status"][user], result["body"] = response.status_code, response.json()


def _sweep_timeouts_like_the_scheduler(dag_id: str, result: dict, timeout_s: float = 900) -> None:
    """No answer: once the response deadline has passed, run the scheduler's AWAITING_INPUT timeout sweep."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    found = _awaiting_input(dag_id, "approve_promotion", time.monotonic() + timeout_s)
    if found is None:
        result["error"] = "approve_promotion never waited for input"
        return
    _, deadline = found
    while datetime.now(UTC) <= deadline:
        time.sleep(0.5)
    SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()
    result["swept"] = True


def test_train_model_promotes_a_first_champion_then_rejects_an_identical_challenger(
    airflow_db, feature_history, training_settings, load_dag, tmp_path
):
    import mlflow

    from jobs.config import load_training_config
    from jobs.platform.dbt_runner import manifest_hash
    from jobs.platform.tracking import mlflow_client
    from jobs.training.context import config_hash, git_commit, run_dir_for

    s = training_settings
    days = feature_history
    dag = load_dag("train_model")
    conf = {
        "last_test_day": str(days[7]),
        "train_days": 2,
        "gap_days": 2,
        "test_days": 1,
        "n_folds": 1,
        "n_trials": TRIALS,
    }

    first = dag.test(logical_date=datetime(2025, 3, 11, tzinfo=UTC), run_conf=conf)
    states = _states(first)
    assert first.state == "success", states
    assert states["promote"] == "success" and states["auto_approve"] == "success"
    assert states["approve_promotion"] == "skipped" and states["rejected"] == "skipped"

    client = mlflow_client(s)
    champion = client.get_model_version_by_alias(s.mlflow.model_name, "champion")
    assert champion.tags["gate.decision"] == "passed"
    assert champion.tags["approved_by"].startswith("auto-approve") and champion.tags["approved_at"]
    assert "PASSED" in champion.description

    # The champion loads by alias and scores the feature rows.
    from jobs.features.registry import features_matrix

    frame = __import__("pandas").read_parquet(next(s.storage.training_dir.glob("*/frame.parquet")))
    model = mlflow.pyfunc.load_model(f"models:/{s.mlflow.model_name}@champion")
    scores = model.predict(features_matrix(frame.head(20)))
    assert len(scores) == 20 and ((scores >= 0) & (scores <= 1)).all()

    # Lineage on the parent run, one nested run per trial, report, plots and model card as artifacts.
    run = client.get_run(champion.run_id)
    tags = run.data.tags
    from jobs.features.registry import FEATURE_SET_VERSION
    from jobs.platform.lakehouse import table_version
    from jobs.training.dataset import PINNED_TABLES

    manifest = json.loads((run_dir_for(s, first.run_id) / "manifest.json").read_text())
    assert tags["git_commit"] == git_commit() and tags["dbt_manifest_hash"] == manifest_hash(s)
    assert tags["feature_set_version"] == FEATURE_SET_VERSION
    assert tags["config_hash"] == config_hash(
        load_training_config(s), s, {"windows": manifest["windows"], "n_trials": TRIALS}
    )
    assert tags["data.frame_hash"] == manifest["frame_hash"] and tags["training_key"] == first.run_id
    from jobs.platform.spark import get_spark

    spark = get_spark(s)
    for table in PINNED_TABLES:
        assert (
            int(tags[f"delta_version.{table}"]) == manifest["delta_versions"][table] <= table_version(spark, table)
        ), table
    assert tags["window.test"] == f"{days[7]}..{days[7]}" and tags["window.train"] == f"{days[3]}..{days[4]}"
    assert tags["training.trigger"] == "manual"  # not the weekly schedule, not a retrain request
    card = Path(client.download_artifacts(run.info.run_id, "model_card/model_card.md", str(tmp_path)))
    assert "**Why it was trained:** manual." in card.read_text()
    assert (tags["window.cutoff"], tags["window.gap_days"]) == (f"{days[7]}T00:00:00", "2")
    data_end = spark.sql("SELECT max(tx_date) FROM marts.fct_transactions").collect()[0][
        0
    ]  # test labels: as of the data's end
    assert tags["window.label_as_of"] == f"{data_end + timedelta(days=1)}T00:00:00"
    assert {k: v for k, v in champion.tags.items() if k in tags} == {
        k: v for k, v in tags.items() if k in champion.tags
    }
    nested = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(nested) == TRIALS and all(r.data.params for r in nested)
    artifacts = {
        f.path
        for d in ("evaluation", "evaluation/plots", "model_card")
        for f in client.list_artifacts(run.info.run_id, d)
    }
    assert {
        "evaluation/evaluation.json",
        "evaluation/evaluation.html",
        "evaluation/plots/roc.png",
        "evaluation/plots/precision_recall.png",
        "evaluation/plots/calibration.png",
        "evaluation/plots/slices.png",
        "evaluation/plots/feature_importance.png",
        "model_card/model_card.md",
        "model_card/model_card.html",
        "evaluation/monitoring_reference.json",
    } <= artifacts
    # the monitoring reference travels with the version: every model feature binned, and the test scores
    from jobs.features.registry import FEATURE_NAMES
    from jobs.monitoring.reference import load_reference

    reference = load_reference(champion.version, s)
    assert set(reference["features"]) == set(FEATURE_NAMES) and reference["n_rows"] > 0
    assert 0 < reference["score"]["alert_rate"] < 1 and reference["score"]["kind"] == "continuous"
    metrics = run.data.metrics
    for key in (
        "test_auc",
        "test_average_precision",
        "test_card_precision_at_100",
        "test_brier",
        "baseline_average_precision",
    ):
        assert key in metrics

    # Same data versions, same seed: the same model and metrics; no gain, so the gate rejects it.
    second = dag.test(logical_date=datetime(2025, 3, 12, tzinfo=UTC), run_conf=conf)
    states = _states(second)
    assert second.state == "success", states
    assert states["rejected"] == "success" and states["promote"] == "skipped" and states["auto_approve"] == "skipped"
    challenger = client.get_model_version_by_alias(s.mlflow.model_name, "challenger")
    assert challenger.version != champion.version
    assert (
        challenger.tags["gate.decision"] == "rejected" and "average_precision_gain" in challenger.tags["gate.reasons"]
    )
    assert client.get_model_version_by_alias(s.mlflow.model_name, "champion").version == champion.version
    again = client.get_run(challenger.run_id)
    for key in ("test_auc", "test_average_precision", "test_card_precision_at_100", "tune_best_average_precision"):
        assert again.data.metrics[key] == metrics[key], key
    assert {k: v for k, v in again.data.params.items() if k.startswith("best.")} == {
        k: v for k, v in run.data.params.items() if k.startswith("best.")
    }
    assert again.data.tags["data.frame_hash"] == tags["data.frame_hash"]
    assert _xcom(second, "record_outcome") == {
        "outcome": "rejected by the gate",
        "version": str(challenger.version),
        "reasons": json.loads(challenger.tags["gate.reasons"]),
    }
    assert _xcom(first, "record_outcome")["outcome"] == "promoted"


def test_a_person_rejects_then_no_one_answers_and_neither_version_serves(
    airflow_db, feature_history, training_settings, monkeypatch, load_dag
):
    """After the first test's champion: a challenger passes the gate (margins opened) and waits for a person."""
    from jobs.platform.tracking import mlflow_client

    monkeypatch.setenv("PIPELINE_AUTO_APPROVE", "false")
    monkeypatch.setenv("PIPELINE_PROMOTION_MARGIN", "-1")  # any AP passes the comparison
    monkeypatch.setenv("PIPELINE_SLICE_MARGIN", "1")
    get_settings.cache_clear()
    s = get_settings()
    client = mlflow_client(s)
    champion = client.get_model_version_by_alias(s.mlflow.model_name, "champion").version
    days = feature_history
    conf = {"last_test_day": str(days[7]), "train_days": 2, "gap_days": 2, "test_days": 1, "n_folds": 1, "n_trials": 1}
    dag = load_dag("train_model")

    answer: dict = {}
    person = threading.Thread(target=_respond_through_rest_api, args=("train_model", "Reject", answer), daemon=True)
    person.start()
    run = dag.test(logical_date=datetime(2025, 3, 13, tzinfo=UTC), run_conf=conf)
    person.join(timeout=60)
    states = _states(run)
    # only the approval's assigned user (PIPELINE_APPROVERS: model_owner) may answer; an operator may not
    assert answer.get("status") == {"operator": 403, "model_owner": 200}, answer
    assert answer["body"]["chosen_options"] == ["Reject"] and answer["body"]["responded_by"]["name"] == "model_owner"
    request = answer["request"]  # what the model owner saw: a table and links, not a dict
    assert request["assigned_users"] == [{"id": "model_owner", "name": "model_owner"}]
    assert (
        "| model | AUC | average precision | Card Precision@100 | net savings | flagged slices | FPR gap segment / region |"
        in request["body"]
    )
    assert f"| champion v{champion} |" in request["body"] and "[Model card](http" in request["body"]
    assert run.state == "success", states
    assert (states["approve_promotion"], states["promote"], states["record_outcome"]) == (
        "success",
        "skipped",
        "success",
    )
    rejected = client.get_model_version_by_alias(s.mlflow.model_name, "challenger")
    assert rejected.tags["gate.decision"] == "passed"
    assert (rejected.tags["approval"], rejected.tags["rejected_by"]) == ("rejected", "model_owner")
    assert client.get_model_version_by_alias(s.mlflow.model_name, "champion").version == champion
    from jobs.release import audit

    trail = [(r["action"], r["decision"], r["actor"]) for r in audit.read(rejected.version, settings=s)]
    assert trail == [("gate", "passed", "train_model gate"), ("approve", "rejected", "model_owner")]
    from jobs.release.registry import promote

    with pytest.raises(ValueError, match="was rejected by model_owner"):
        promote(rejected.version, "someone else")

    assert _xcom(run, "record_outcome") == {
        "outcome": "rejected by approver",
        "version": str(rejected.version),
        "approval": "rejected",
        "rejected_by": "model_owner",
        "rejected_at": rejected.tags["rejected_at"],
    }

    # Nobody answers: the response deadline passes and the scheduler's sweep applies the default, Reject.
    dag = load_dag("train_model")
    dag.get_task("approve_promotion").response_timeout = timedelta(seconds=3)
    swept: dict = {}
    sweeper = threading.Thread(target=_sweep_timeouts_like_the_scheduler, args=("train_model", swept), daemon=True)
    sweeper.start()
    run = dag.test(logical_date=datetime(2025, 3, 14, tzinfo=UTC), run_conf=conf)
    sweeper.join(timeout=60)
    states = _states(run)
    assert swept.get("swept"), swept
    assert run.state == "success" and (states["promote"], states["record_outcome"]) == ("skipped", "success"), states
    timed_out = client.get_model_version_by_alias(s.mlflow.model_name, "challenger")
    assert timed_out.version != rejected.version and timed_out.tags["gate.decision"] == "passed"
    assert (timed_out.tags["approval"], timed_out.tags["rejected_by"]) == ("rejected", "timeout default")
    assert client.get_model_version_by_alias(s.mlflow.model_name, "champion").version == champion
    assert _xcom(run, "record_outcome")["outcome"] == "rejected by approver"
    get_settings.cache_clear()


def test_a_run_that_fails_before_the_gate_says_so_and_fails(airflow_db, feature_history, training_settings, load_dag):
    """Not enough history: the training set fails at once (no retry), the run fails, the outcome is recorded."""
    dag = load_dag("train_model")
    conf = {"last_test_day": "2025-02-20", "train_days": 2, "gap_days": 2, "test_days": 1, "n_folds": 1, "n_trials": 1}
    started = time.monotonic()
    run = dag.test(logical_date=datetime(2025, 3, 15, tzinfo=UTC), run_conf=conf)
    states = _states(run)
    assert run.state == "failed", states
    assert (
        states["build_training_set"] == "failed"
        and states["tune"] == "upstream_failed"
        and states["gate"] == "upstream_failed"
    )
    assert states["record_outcome"] == "success"
    assert _xcom(run, "record_outcome") == {"outcome": "failed before the gate"}
    assert time.monotonic() - started < 120  # no five-minute retry of a training set that cannot be built


DAY_MS = 86_400_000


def _backdate(table: Path, pinned: int, pinned_at: int, later: int) -> None:
    """Rewrite the commit and removal times of a copied Delta table's log: up to ``pinned`` at
    ``pinned_at``, the later commits at ``later`` (milliseconds), the mtimes of log and data files too."""
    import os

    for entry in sorted((table / "_delta_log").glob("*.json")):
        when = pinned_at if int(entry.stem) <= pinned else later
        actions = [json.loads(line) for line in entry.read_text().splitlines() if line.strip()]
        for action in actions:
            if "commitInfo" in action:
                action["commitInfo"]["timestamp"] = when
                action["commitInfo"].pop("inCommitTimestamp", None)
            if "remove" in action:
                action["remove"]["deletionTimestamp"] = when
            if "add" in action:  # VACUUM deletes only files older than its horizon on disk too
                os.utime(table / action["add"]["path"], (when / 1000, when / 1000))
        entry.write_text("".join(json.dumps(a) + "\n" for a in actions))
        os.utime(entry, (when / 1000, when / 1000))
        (entry.parent / f".{entry.name}.crc").unlink(missing_ok=True)  # Hadoop's checksum of the old bytes


def test_the_champion_reproduces_and_lakehouse_maintenance_keeps_it_so(
    airflow_db, feature_history, training_settings, load_dag, monkeypatch, tmp_path
):
    """``reproduce`` rebuilds the champion exactly; then, on a copy of the lakehouse where a pinned table
    was replaced (its pinned version dated three days back, the replacement two), ``maintain_lakehouse``
    (retention 0) vacuums what nobody pins and keeps what the champion pins: it still reproduces.
    Without the pins, a one-day VACUUM breaks it."""
    import shutil

    from deltalake import DeltaTable

    from jobs.governance.lakehouse import TablePlan, maintain_table, unreadable_pins
    from jobs.governance.reproduce import reproduce
    from jobs.platform import delta
    from jobs.platform.opslog import LOG_TABLE
    from jobs.platform.spark import get_spark
    from jobs.platform.tracking import mlflow_client

    s = training_settings
    champion = mlflow_client(s).get_model_version_by_alias(s.mlflow.model_name, "champion")  # the first test's
    out = reproduce("champion", s)
    assert out["version"] == str(champion.version) and out["reproduced"], out
    assert out["training_set"]["rebuilt_hash"] == champion.tags["data.frame_hash"]
    assert out["configuration"]["lightgbm"] == "recorded with the run"
    assert all(m["match"] and m["registered"] is not None for m in out["metrics"].values()), out["metrics"]
    assert out["scores"]["rows"] > 0 and out["scores"]["max_abs_diff"] <= 1e-9

    # Its evaluation carries the fairness parity and each feature's benefit, and its card shows them.
    from jobs.features.registry import FEATURE_NAMES

    client = mlflow_client(s)
    evaluation = json.loads(
        Path(client.download_artifacts(champion.run_id, "evaluation/evaluation.json", str(tmp_path))).read_text()
    )
    benefit = evaluation["feature_benefit"]
    assert set(benefit["features"]) == set(FEATURE_NAMES) and benefit["folds"] == 1 and benefit["repeats"] >= 1
    assert benefit["not_helping"] == sorted(n for n, f in benefit["features"].items() if f["helps"] is False)
    assert set(evaluation["parity"]) == {"segment", "region"}
    card = Path(client.download_artifacts(champion.run_id, "model_card/model_card.md", str(tmp_path))).read_text()
    assert "## Features: benefit and cost" in card and "## Fairness: alert rate and false-positive rate" in card
    # trained with the YAML's monotone constraints, recorded in the evaluation and named on the card
    from jobs.config import load_training_config

    declared = {n: d for n, d in load_training_config(s)["monotone_constraints"].items() if d}
    assert evaluation["monotone_constraints"] == declared and declared
    assert all(f"`{n}` ↑" in card for n in declared), card

    copy_dir = tmp_path / "data"
    shutil.copytree(s.storage.data_dir, copy_dir, ignore=shutil.ignore_patterns("training"))
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(copy_dir))
    monkeypatch.setenv("PIPELINE_VACUUM_SAFETY_MARGIN_S", "0")
    get_settings.cache_clear()
    c = get_settings()
    pinned = {t: int(champion.tags[f"delta_version.{t}"]) for t in out["delta_versions"]}
    spark = get_spark(c)
    rewritten = "marts.dim_terminals"  # a newer version that replaces every file the pinned one reads
    location = str(delta.path(c, rewritten))
    spark.read.format("delta").load(location).write.format("delta").mode("overwrite").save(location)
    assert delta.version(c, rewritten) > pinned[rewritten]
    # As if the pinned version was committed three days ago and replaced two days ago: a retention of a
    # day would delete what it reads; maintenance must keep three days (and a bit) on this table.
    now_ms = int(time.time() * 1000)
    _backdate(Path(location), pinned[rewritten], pinned_at=now_ms - 3 * DAY_MS, later=now_ms - 2 * DAY_MS)
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # Spark must read the log as it now is
    unpinned_before = DeltaTable(str(delta.path(c, LOG_TABLE)))  # many small appends, pinned by nobody
    assert len(unpinned_before.file_uris()) > 1
    unpinned_version = unpinned_before.version()

    tables = [*pinned, LOG_TABLE]
    run = load_dag("maintain_lakehouse").test(run_conf={"retention_hours": 0, "tables": tables})
    states = _states(run)
    assert run.state == "success", states
    plans = {p["table"]: p for p in _xcom(run, "plan")}
    assert (
        plans[rewritten]["pinned"] == [pinned[rewritten]] and plans[rewritten]["retention_hours"] == 73
    )  # ceil(72 h + s)
    assert plans[LOG_TABLE]["pinned"] == [] and plans[LOG_TABLE]["retention_hours"] == 0
    result = {t["table"]: t for t in _xcom(run, "optimize_and_vacuum")["tables"]}
    assert result[LOG_TABLE]["optimize"]["files_removed"] > 1 and result[LOG_TABLE]["bytes_freed"] > 0
    old_log = DeltaTable(str(delta.path(c, LOG_TABLE)), version=unpinned_version).file_uris()
    assert not all(Path(f.removeprefix("file://")).exists() for f in old_log)  # vacuumed: nobody pinned it
    again = reproduce("champion", c)
    assert again["reproduced"] and again["training_set"]["rebuilt_hash"] == out["training_set"]["rebuilt_hash"]

    # The protection is what kept it: a one-day VACUUM without the pins loses the champion's version.
    latest = delta.version(c, rewritten)
    maintain_table(spark, c.override(maintenance={"vacuum_retention_hours": 24}), TablePlan(rewritten, latest))
    broken = unreadable_pins(c, [TablePlan(rewritten, latest, {pinned[rewritten]: [str(champion.version)]})])
    assert broken and f"{rewritten}@{pinned[rewritten]}" in broken[0]
    get_settings.cache_clear()
