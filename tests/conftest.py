"""Test environment: a private data dir and Airflow metadata DB per session, real Spark and Delta.

Environment variables are set here, at import time, before any test module imports Airflow or
reads the pipeline settings. One SparkSession serves the whole session (the embedded Derby
metastore admits one JVM), so tests that ingest use dates of their own.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DAGS_DIR = ROOT / "dags"
TMP = Path(tempfile.mkdtemp(prefix="fraud-pipeline-tests-"))

os.environ.update(
    {
        "PIPELINE_DATA_DIR": str(TMP / "data"),
        # Small data: fast JVM warm-up beats peak speed. C1 alone fills the default code cache within
        # one session of dbt threads (a VirtualMachineError in a model), so the cache is larger. The
        # serial collector: on a 2 GB heap of small objects, G1's barriers and threads cost more than
        # its short pauses save (four dbt builds: 6 % less JVM CPU). No bytecode verification of the
        # classpath (Spark's jars and the Delta jars Maven resolved, nothing else): a cold JVM loads thousands
        # of classes before its first query, and costs 5 CPU-s less without (session start and first dbt
        # build: 44.5 -> 38.3 JVM CPU-s). Tests only: production JVMs keep verifying.
        "PIPELINE_SPARK_JAVA_OPTS": (
            "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m -XX:+UseSerialGC"
            " -XX:+UnlockDiagnosticVMOptions -XX:-BytecodeVerificationRemote"
        ),
        # Interpreted expressions instead of generated code: on rows by the hundred, generating and compiling
        # a projection costs more than evaluating it (a warm dbt build: 15 JVM CPU-s instead of 22).
        "PIPELINE_SPARK_CONF": "spark.sql.codegen.factoryMode=NO_CODEGEN",
        "PIPELINE_SPARK_SHUFFLE_PARTITIONS": "2",
        "PIPELINE_SPARK_DRIVER_MEMORY": "2g",
        "PIPELINE_START_DATE": "2025-01-01",  # before every date the tests use
        "PIPELINE_SENSOR_POKE_INTERVAL_S": "5",
        "PIPELINE_SENSOR_TIMEOUT_S": "60",
        "AIRFLOW_HOME": str(ROOT),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{TMP / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(TMP / "airflow-logs"),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(TMP / "airflow-logs" / "dag_processor"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(TMP / "passwords.json"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
)


logging.getLogger("py4j").setLevel(logging.WARNING)  # py4j logs at interpreter exit, after capture closed


# dag.test() sleeps a whole second whenever no task is ready: while a skip or an upstream failure
# propagates (one level per pass: seven seconds for a training run that fails at its first task), and
# while a task waits for a person. Only those sleeps, called by dag.test() itself, last 0.1 s here.
DAG_TEST_IDLE_S = 0.1
_sleep = time.sleep


def _sleep_shorter_in_dag_test(seconds: float) -> None:
    caller = sys._getframe(1)
    if caller.f_code.co_name == "test" and caller.f_globals.get("__name__") == "airflow.sdk.definitions.dag":
        seconds = min(seconds, DAG_TEST_IDLE_S)
    _sleep(seconds)


time.sleep = _sleep_shorter_in_dag_test


# Tests that read the shared history (built once per process by ``history_backfill``).
HISTORY_FIXTURES = {"history_backfill", "history", "marts", "feature_history"}


# The files whose tests read the shared history: ``make test`` runs them all in one worker.
HISTORY_FILES = {
    "tests/dags/test_train_model_e2e.py",
    "tests/data/test_backfill.py",
    "tests/data/test_features.py",
    "tests/data/test_training_set.py",
    "tests/data/test_transform.py",
    "tests/serving/test_service.py",
    "tests/serving/test_monitoring_checks.py",
    "tests/ui/test_browser.py",
}


# Work units that take minutes, longest first (seconds of test time on 2 cores, 2026-11-30): handed
# out first so that neither worker is left with one at the end while the other has nothing to do.
# The shared history has to come first: it is the longest, and only one worker can run it.
LONGEST_FIRST = {
    "shared-history": 360,
    "tests/dags/test_data_pipeline_e2e.py": 170,
    "tests/serving/test_deploy.py": 95,
    "tests/data/test_feature_crash.py": 90,
    "tests/data/test_failures.py": 25,
}


def pytest_xdist_make_scheduler(config, log):
    """Work units for ``pytest -n N`` (``make test`` runs two workers): one per test file, and one
    for every file that reads the shared history.

    Each worker is a process with its own data dir, Airflow DB, Spark session and metastore (this
    module runs in each): a file kept whole builds its module fixtures once, and the history is built
    once, in the worker that runs all its readers.
    """
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # units in collection order, but for LONGEST_FIRST

    class OneFileOrTheHistory(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            return "shared-history" if path in HISTORY_FILES else path

        def _assign_work_unit(self, node):
            """Hand out the longest unit left first (so no worker is left with one at the end), unless
            the worker is still busy with a long one: then the shortest.

            xdist hands a worker its next unit ahead, while two of its tests are still pending (a worker
            holds its last test until it knows the next); a long unit handed ahead would wait behind the
            long one (the feature crash test is a single test of a minute and a half) while the other worker
            may run out of work.
            The queue is reordered, never the collections: xdist sends a worker *indexes* into that
            worker's own collection, so reordered collections would send other tests than the unit's.
            """
            busy = any(
                scope in LONGEST_FIRST and not all(tests.values()) for scope, tests in self.assigned_work[node].items()
            )
            first = (min if busy else max)(self.workqueue, key=lambda scope: LONGEST_FIRST.get(scope, 0))
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

    return OneFileOrTheHistory(config, log)


def pytest_collection_modifyitems(config, items):
    """Keep ``HISTORY_FILES`` complete: a test that reads the history elsewhere would build it twice."""
    strays = {
        i.nodeid.split("::")[0]
        for i in items
        if HISTORY_FIXTURES & set(getattr(i, "fixturenames", ())) and i.nodeid.split("::")[0] not in HISTORY_FILES
    }
    if strays:
        raise pytest.UsageError(f"add {sorted(strays)} to HISTORY_FILES in tests/conftest.py (they read the history)")


def pytest_sessionfinish(session, exitstatus):
    from jobs.platform.spark import stop_spark

    stop_spark()
    if "ray" in sys.modules:
        import ray

        ray.shutdown()
    shutil.rmtree(TMP, ignore_errors=True)
    # At interpreter exit py4j's finalizer thread still tells the (gone) JVM to release objects, fails, and
    # logs it with logging.info to a stream pytest has closed: no "--- Logging error ---" dump for that.
    logging.raiseExceptions = False


@pytest.fixture(scope="session")
def settings():
    from jobs.config import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def spark(settings):
    from jobs.platform.spark import get_spark

    return get_spark(settings, app_name="tests")


@pytest.fixture(scope="session")
def load_dag():
    """Parse one DAG file as Airflow does (``dags/`` on sys.path, like a bundle) and return its DAG."""

    def load(dag_id: str):
        from airflow.dag_processing.dagbag import BundleDagBag

        bag = BundleDagBag(dag_folder=str(DAGS_DIR / f"{dag_id}.py"), bundle_path=DAGS_DIR)
        assert not bag.import_errors, bag.import_errors
        return bag.dags[dag_id]

    return load


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB (dag.test() needs one)."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


# --------------------------------------------------------------------------------------------
# A small simulated history shared by the dbt, feature and training tests (built once per session).

HISTORY_START = date(2025, 3, 1)
HISTORY_DAYS = 10


@pytest.fixture(scope="session")
def history_backfill(settings, spark):
    """Ten simulated days (2025-03-01..10) through ``jobs.backfill``: bronze, marts and features.

    Frauds are reported within a day (``max_report_delay_days=1``), so labels mature in two days and
    a training window, its gap and a test day fit in the short history. Returns (config, simulator
    summary, backfill summary, days).
    """
    from jobs.data.backfill import backfill
    from jobs.data.simulate import SimulationConfig, simulate

    cfg = SimulationConfig(
        start_date=HISTORY_START, days=HISTORY_DAYS, n_customers=300, n_terminals=600, seed=11, max_report_delay_days=1
    )
    simulated = simulate(cfg, settings.storage.landing_dir)
    days = [HISTORY_START + timedelta(days=i) for i in range(HISTORY_DAYS)]
    summary = backfill(days[0], days[-1], settings)
    return cfg, simulated, summary, days


@pytest.fixture(scope="session")
def history(history_backfill):
    """The days of the shared history: ingested into bronze, with marts and features built."""
    return history_backfill[-1]


@pytest.fixture(scope="session")
def marts(history):
    return history


@pytest.fixture(scope="session")
def feature_history(history):
    return history
