"""data_pipeline: the daily batch, from landing files to validated features.

wait for the day's files -> ingest transactions -> ingest fraud reports -> reference snapshots
-> dbt build (one task per model and per model's tests) -> features -> feature validation (Asset,
with the day in its extra: batch_score runs on it) -> materialize the day's state into the online
store (Asset), and, once a week, time each feature in the feature job (``ops.feature_costs``: the cost
the model card shows next to each feature's benefit).

Thin by design: every task calls one function of ``jobs``. The batch date is the run's logical date
(``ds``); scheduled runs use data intervals, so the run for day D starts after D ends, and a backfill
of an old date recomputes that date only. Ingestion needs no JVM (delta-rs); the Spark work (dbt, features)
goes through the one-slot ``spark`` pool.

dbt runs with astronomer-cosmos's watcher execution mode: one producer task runs ``dbt build`` once,
in-process, in one Spark session, and a sensor per model (and per model's tests) reports that node's
outcome, so every model shows as its own task without a JVM start per model.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import BaseSensorOperator, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable
from assets import BRONZE_FRAUD_REPORTS, BRONZE_TRANSACTIONS, ONLINE_STORE, TRANSACTION_FEATURES
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from jobs.config import get_settings
from jobs.platform.dbt_runner import PROFILE_NAME, dbt_env

settings = get_settings()
SPARK_POOL = settings.airflow.spark_pool

DBT_SENSOR_POKE_S = 10

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="data_pipeline",
    description="Daily: validated ingestion, dbt marts, point-in-time features, feature validation",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.instance(settings.airflow.start_datetime),
    catchup=settings.airflow.catchup,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ingestion", "dbt", "features"],
    doc_md=__doc__,
)
def data_pipeline():
    @task.sensor(
        poke_interval=settings.airflow.sensor_poke_interval_s,
        timeout=settings.airflow.sensor_timeout_s,
        mode="reschedule",  # frees the worker slot between pokes; a timeout is not retried
    )
    def wait_for_landing_files(ds: str | None = None) -> bool:
        from jobs.data.landing import landing_files_ready

        return landing_files_ready(pendulum.parse(ds).date())

    # Ingestion writes Delta with delta-rs, no JVM: it needs no slot of the Spark pool.
    @task(outlets=[BRONZE_TRANSACTIONS])
    def ingest_transactions(ds: str | None = None, run_id: str | None = None) -> dict:
        from jobs.data.ingest import ingest_batch

        return ingest_batch(ds, "transactions", run_id=run_id)

    @task(outlets=[BRONZE_FRAUD_REPORTS])
    def ingest_fraud_reports(ds: str | None = None, run_id: str | None = None) -> dict:
        from jobs.data.ingest import ingest_batch

        return ingest_batch(ds, "fraud_reports", run_id=run_id)

    @task
    def ingest_reference_data(ds: str | None = None, run_id: str | None = None) -> dict:
        from jobs.data.reference import ingest_references

        return ingest_references(ds, run_id=run_id)

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=settings.dbt.project_dir,
            manifest_path=settings.dbt.manifest_path,
            install_dbt_deps=False,
            env_vars=dbt_env(settings),
        ),
        profile_config=ProfileConfig(
            profile_name=PROFILE_NAME,
            target_name=settings.dbt.target,
            profiles_yml_filepath=settings.dbt.project_dir / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        # dbt unit tests check the SQL logic, not the day's data: they run in CI (make test), not daily.
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.AFTER_EACH,
            exclude=["resource_type:unit_test"],
        ),
        operator_args={"vars": {"as_of": "{{ ds }}"}, "install_deps": False},
    )
    for dbt_task in dbt.iter_tasks():
        if dbt_task.task_id.endswith("dbt_producer_watcher"):
            dbt_task.pool = SPARK_POOL  # only the producer runs dbt (and Spark)
        elif isinstance(dbt_task, BaseSensorOperator):
            # Per-model sensors poke the producer's XCom and give their worker slot back between
            # pokes (reschedule mode) instead of deferring to the triggerer: the same behaviour
            # in the scheduler and in `dag.test()`, which runs tasks one at a time.
            dbt_task.deferrable = False
            dbt_task.mode = "reschedule"
            dbt_task.poke_interval = DBT_SENSOR_POKE_S

    @task(pool=SPARK_POOL)
    def build_features(ds: str | None = None) -> dict:
        from jobs.features.build import build_features as build

        return build(ds)

    @task(pool=SPARK_POOL, outlets=[TRANSACTION_FEATURES])
    def validate_features(ds: str | None = None, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.features.validate import FeatureValidationError, validate_feature_partition

        try:
            summary = validate_feature_partition(ds)
        except FeatureValidationError as exc:  # the same rows would fail again: no retry, no Asset
            raise AirflowFailException(str(exc)) from exc
        outlet_events[TRANSACTION_FEATURES].extra = {"batch_date": ds}
        return summary

    @task(outlets=[ONLINE_STORE])
    def materialize_online(ds: str | None = None, outlet_events=None) -> dict:
        from jobs.features.store import materialize_online as materialize

        summary = materialize(ds)  # idempotent: the store's state is replaced as a whole
        outlet_events[ONLINE_STORE].extra = {"state_date": ds}
        return summary

    @task(pool=SPARK_POOL)
    def measure_feature_costs(ds: str | None = None) -> dict:
        """Each feature's Spark time on the day just built, at most once a week (the model card shows it)."""
        from datetime import date

        from jobs.features.cost import ensure_recent

        costs = ensure_recent(date.fromisoformat(ds))
        return {k: costs[k] for k in ("day", "measured_at", "rows", "seconds_all_features")}

    ingested = wait_for_landing_files() >> ingest_transactions() >> ingest_fraud_reports() >> ingest_reference_data()
    validated = ingested >> dbt >> build_features() >> validate_features()
    validated >> [materialize_online(), measure_feature_costs()]


data_pipeline()
