"""Every DAG imports cleanly and fast, with owners and retries, and the expected shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
HUMAN_TASKS = {"ApprovalOperator", "HITLOperator", "HITLBranchOperator"}  # a retry would ask again
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag():
    """Every DAG file, parsed as Airflow's DAG processor does (the folder on sys.path, .airflowignore honoured)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS_DIR), bundle_path=DAGS_DIR)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {
        "data_pipeline",
        "train_model",
        "batch_score",
        "deploy_model",
        "monitor_model",
        "maintain_lakehouse",
    }
    assert not any(p.endswith("assets.py") for p in dagbag.file_last_changed)  # .airflowignore: not a DAG file


def test_each_asset_is_defined_once_and_shared(dagbag):
    """Producer and consumer import the same Asset object from dags/assets.py; no DAG file builds its own."""
    import assets

    for path in DAG_FILES:
        if path.name != "assets.py":
            assert "Asset(" not in path.read_text(), f"{path.name} defines an Asset: import it from dags/assets.py"
    features = dagbag.dags["data_pipeline"].get_task("validate_features").outlets
    assert features == [assets.TRANSACTION_FEATURES]
    assert list(dagbag.dags["train_model"].timetable.asset_condition.objects) == [assets.RETRAIN_REQUEST]
    assert dagbag.dags["train_model"].get_task("promote").outlets == [assets.CHAMPION_MODEL]
    # batch_score runs on the same validated features; it emits the scores, the queue and the loaded log
    batch = dagbag.dags["batch_score"]
    assert batch.timetable.asset_condition.objects == [assets.TRANSACTION_FEATURES] or list(
        batch.timetable.asset_condition.objects
    ) == [assets.TRANSACTION_FEATURES]
    assert batch.get_task("score").outlets == [assets.TRANSACTION_SCORES, assets.DAILY_ALERTS]
    assert batch.get_task("load_prediction_log").outlets == [assets.PREDICTION_LOG]
    assert dagbag.dags["data_pipeline"].get_task("materialize_online").outlets == [assets.ONLINE_STORE]
    # monitor_model runs on the scores; it emits the checks and, on a drift alert, the retrain request
    monitor = dagbag.dags["monitor_model"]
    assert list(monitor.timetable.asset_condition.objects) == [assets.TRANSACTION_SCORES, assets.PREDICTION_LOG]
    assert monitor.get_task("raise_alerts").outlets == [assets.MONITORING_CHECKS]
    assert monitor.get_task("request_retraining").outlets == [assets.RETRAIN_REQUEST]
    # deploy_model runs on the champion Asset train_model's promote emits, and emits the deployed one
    deploy = dagbag.dags["deploy_model"]
    assert list(deploy.timetable.asset_condition.objects) == [assets.CHAMPION_MODEL]
    assert deploy.get_task("switch").outlets == [assets.DEPLOYED_MODEL]


def test_deploy_model_shape(dagbag, settings):
    """Each stage needs the previous one; a failure anywhere ends in the rollback; strategies skip, never fail.

    Failed comparisons and smoke tests raise AirflowFailException (a retry would see the same evidence);
    the retries are for infrastructure (a registry or Bento build hiccup)."""
    dag = dagbag.dags["deploy_model"]
    up = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
    assert up["build_bento"] == {"plan", "route"} and up["manual_rollback"] == {"plan", "route"}
    assert up["smoke_test"] == {"plan", "build_bento"} and up["shadow"] == {"plan", "smoke_test"}
    # canary and switch read the plan from XCom: their only upstreams are stages, so a rollback run
    # (smoke test skipped) skips them, and a strategy without shadow (or canary) still reaches them
    assert up["canary"] == {"smoke_test", "shadow"} and up["switch"] == {"smoke_test", "canary"}
    assert up["rollback"] == {"build_bento", "smoke_test", "shadow", "canary", "switch"}
    assert up["outcome"] == {"switch", "rollback", "manual_rollback"}  # the one leaf: it decides the run's colour
    assert [t.task_id for t in dag.tasks if not t.downstream_task_ids] == ["outcome"]
    rules = {t.task_id: t.trigger_rule for t in dag.tasks}
    assert rules["canary"] == rules["switch"] == "none_failed_min_one_success" and rules["rollback"] == "one_failed"
    assert rules["outcome"] == "all_done"
    assert dag.params["strategy"] == settings.deploy.strategy and dag.params["canary_shares"] == settings.deploy.shares
    assert dag.max_active_runs == 1


# Airflow's DAG processor imports the framework once and forks a child per DAG file: so does this script,
# each child importing one file into the framework-only parent's state (not what a sibling imported) and
# reporting its CPU seconds. One interpreter start for every file instead of one each.
_TIME_IMPORTS = """
import importlib.util, json, os, pathlib, sys, time
import airflow.sdk  # the framework is loaded once per dag-processor; the DAG file's own cost is what counts
out = {}
for arg in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import one file, report, exit
        os.close(read)
        sys.path.append(str(pathlib.Path(arg).parent))  # the DAG folder is on sys.path, as Airflow puts it
        start = time.process_time()  # CPU seconds: a busy machine (CI, a parallel job) does not inflate them
        spec = importlib.util.spec_from_file_location("dag_under_test", arg)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        os.write(write, repr(time.process_time() - start).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        seconds = pipe.read()
    _, status = os.waitpid(pid, 0)
    out[arg] = float(seconds) if os.waitstatus_to_exitcode(status) == 0 and seconds else None
print(json.dumps(out))
"""


def _import_cpu_seconds(paths, tmp_path) -> tuple[dict[str, float | None], str]:
    """CPU seconds each DAG file takes to import (None: it failed), each in a child forked after ``airflow.sdk``;
    and the children's stderr (an import error's traceback)."""
    script = tmp_path / "time_imports.py"
    script.write_text(_TIME_IMPORTS)
    proc = subprocess.run([sys.executable, str(script), *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def import_cpu_seconds(tmp_path_factory):
    return _import_cpu_seconds(DAG_FILES, tmp_path_factory.mktemp("imports"))


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_each_dag_file_imports_in_under_three_cpu_seconds(path, import_cpu_seconds, tmp_path):
    """Measured in a child of an interpreter that has only the framework loaded, so modules cached by other
    tests do not hide a slow import; in CPU time.

    data_pipeline needs about 1.4-2.1 CPU seconds here, nearly all of it astronomer-cosmos (its import and
    reading the dbt manifest); a Spark or pandas import at the top of a DAG file would add seconds more.
    """
    measured, stderr = import_cpu_seconds
    seconds = measured[str(path)]
    assert seconds is not None, f"{path.name} failed to import: {stderr[-2000:]}"
    # CPU time still inflates on a 2-core machine busy with a JVM (3.03 s once for data_pipeline's usual 2.0):
    # an import over budget is measured once more and the lower value counts; a real regression stays over
    if seconds >= 3.0:
        seconds = min(seconds, _import_cpu_seconds([path], tmp_path)[0][str(path)] or seconds)
    assert seconds < 3.0, f"{path.name} took {seconds:.2f} CPU seconds to import"


def test_every_task_has_owner_and_retries(dagbag):
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id} has no owner"
            if task.task_type in HUMAN_TASKS:
                assert task.retries == 0, f"{dag.dag_id}.{task.task_id}: a human decision must not be retried"
            else:
                assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} has no retries"


def test_data_pipeline_shape(dagbag, settings):
    dag = dagbag.dags["data_pipeline"]
    downstream = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert downstream["wait_for_landing_files"] == {"ingest_transactions"}
    assert downstream["ingest_transactions"] == {"ingest_fraud_reports"}
    assert downstream["ingest_fraud_reports"] == {"ingest_reference_data"}
    assert "dbt.dbt_producer_watcher" in downstream["ingest_reference_data"]
    assert downstream["build_features"] == {"validate_features"}
    sensor = dag.get_task("wait_for_landing_files")
    assert sensor.mode == "reschedule" and sensor.timeout == settings.airflow.sensor_timeout_s
    # Every dbt model has its own run task and tests task; only the one producer runs dbt (and Spark).
    import json

    manifest = json.loads(settings.dbt.manifest_path.read_text())
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert {f"dbt.{m}.run" for m in models} <= set(downstream)
    assert {f"dbt.{m}.test" for m in models} <= set(downstream)
    from airflow.sdk import BaseSensorOperator

    sensors = [t for t in dag.tasks if t.task_id.startswith("dbt.") and isinstance(t, BaseSensorOperator)]
    assert len(sensors) == 2 * len(models)
    assert all(s.mode == "reschedule" and not s.deferrable for s in sensors)  # dag.test() runs tasks one at a time
    spark_tasks = {t.task_id for t in dag.tasks if t.pool == settings.airflow.spark_pool}
    # ingestion runs without a JVM (delta-rs): only the dbt producer and the feature tasks hold the Spark slot
    assert spark_tasks == {"dbt.dbt_producer_watcher", "build_features", "validate_features", "measure_feature_costs"}
    # the weekly cost measurement runs on validated features only
    assert dag.get_task("measure_feature_costs").upstream_task_ids == {"validate_features"}
    # The feature Asset is updated only once validation passed; the dbt run labels as of the run date.
    assert [a.name for a in dag.get_task("validate_features").outlets] == ["features.transaction_features"]
    assert dag.get_task("build_features").outlets == []
    # the online store is loaded only from validated features, without the Spark slot (delta-rs)
    assert dag.get_task("materialize_online").upstream_task_ids == {"validate_features"}
    producer = dag.get_task("dbt.dbt_producer_watcher")
    assert producer.vars == {"as_of": "{{ ds }}"}
    assert producer.exclude == "resource_type:unit_test"  # unit tests check SQL logic: CI, not daily runs
    assert dag.max_active_runs == 1


def test_dag_files_are_thin():
    """DAG files orchestrate: no Spark, pandas or SQL at module level."""
    for path in DAG_FILES:
        text = path.read_text()
        for forbidden in ("import pyspark", "from pyspark", "import pandas", "spark.sql(", "SELECT "):
            assert forbidden not in text, f"{path.name} contains {forbidden!r}"


def test_train_model_shape(dagbag, settings):
    dag = dagbag.dags["train_model"]
    down = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    chain = ["build_training_set", "tune", "train_final", "evaluate", "register_challenger", "gate", "route"]
    for a, b in zip(chain, chain[1:], strict=False):
        assert b in down[a], f"{a} -> {b}"
    assert down["route"] == {"rejected", "auto_approve", "approve_promotion"}
    # promote hangs off the two approval paths only: a gate rejection (both skipped) skips it
    assert dag.get_task("promote").upstream_task_ids == {"auto_approve", "approve_promotion"}
    assert dag.get_task("promote").trigger_rule == "none_failed_min_one_success"
    approval = dag.get_task("approve_promotion")
    assert approval.task_type == "HITLOperator" and approval.options == ["Approve", "Reject"]
    assert approval.defaults == ["Reject"] and approval.response_timeout.days == 7 and approval.retries == 0
    from jobs.release.decisions import NextStep

    assert down["route"] == {step.value for step in NextStep}
    # scheduled on the retraining requests monitor_model emits, and weekly; UI parameters
    request = dagbag.dags["monitor_model"].get_task("request_retraining").outlets[0]
    assert [(a.name, a.uri) for a in dag.timetable.asset_condition.objects] == [(request.name, request.uri)]
    assert dag.timetable.timetable.expression == "0 3 * * 1"
    assert {"last_test_day", "train_days", "gap_days", "test_days", "n_folds", "n_trials"} <= set(dag.params)
    # training reads the pinned Delta versions with delta-rs: no task of train_model waits for the Spark slot
    assert all(t.pool != settings.airflow.spark_pool for t in dag.tasks)


def test_maintain_lakehouse_shape(dagbag, settings):
    """Weekly, before Monday's training; the Spark work in the one-slot pool; retention a UI parameter."""
    dag = dagbag.dags["maintain_lakehouse"]
    assert dag.timetable.expression == "0 4 * * 0" and not dag.catchup
    assert [t.task_id for t in dag.topological_sort()] == ["plan", "optimize_and_vacuum"]
    assert dag.get_task("optimize_and_vacuum").pool == settings.airflow.spark_pool
    assert dag.params["retention_hours"] == settings.maintenance.vacuum_retention_hours


def test_train_model_says_why_it_runs():
    """The trigger tagged on the MLflow run: a retrain request's reason, the weekly schedule, or a person."""
    import importlib.util
    from types import SimpleNamespace

    import assets
    from airflow.utils.types import DagRunType

    spec = importlib.util.spec_from_file_location("train_model_dag_file", DAGS_DIR / "train_model.py")
    dag_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dag_file)
    request = SimpleNamespace(extra={"reason": "2026-01-02: data_drift on batch: tx_amount, tx_during_night"})
    reason = dag_file.training_trigger(None, {assets.RETRAIN_REQUEST: [request]})
    assert reason == "retrain_request: 2026-01-02: data_drift on batch: tx_amount, tx_during_night"
    assert dag_file.training_trigger(SimpleNamespace(run_type=DagRunType.SCHEDULED), {}) == "schedule"
    assert dag_file.training_trigger(SimpleNamespace(run_type=DagRunType.MANUAL), None) == "manual"
