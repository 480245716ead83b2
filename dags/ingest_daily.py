"""ingest_daily: wait for a day's landing files, then validate and ingest them into bronze.

Thin by design: every task calls one function of ``jobs.ingest``. The batch date is the run's
logical date (``ds``); scheduled runs use data intervals, so the run for day D starts after D ends.
Spark tasks share the one-slot pool (the embedded Derby metastore admits one JVM at a time).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from jobs.config import get_settings

settings = get_settings()

BRONZE_TRANSACTIONS = Asset(name="bronze.transactions", uri=f"file://{settings.lakehouse_dir}/bronze/transactions")
BRONZE_FRAUD_REPORTS = Asset(name="bronze.fraud_reports", uri=f"file://{settings.lakehouse_dir}/bronze/fraud_reports")

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="ingest_daily",
    description="Validated ingestion of the day's transactions and fraud reports into bronze Delta tables",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.instance(settings.start_datetime),
    catchup=settings.catchup,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ingestion", "bronze"],
    doc_md=__doc__,
)
def ingest_daily():
    @task.sensor(
        poke_interval=settings.sensor_poke_interval_s,
        timeout=settings.sensor_timeout_s,
        mode="reschedule",  # frees the worker slot between pokes; a timeout is not retried
    )
    def wait_for_landing_files(ds: str | None = None) -> bool:
        from jobs.ingest import landing_files_ready

        return landing_files_ready(pendulum.parse(ds).date())

    @task(pool=settings.spark_pool, outlets=[BRONZE_TRANSACTIONS])
    def ingest_transactions(ds: str | None = None, run_id: str | None = None) -> dict:
        from jobs.ingest import ingest_batch

        return ingest_batch(ds, "transactions", run_id=run_id)

    @task(pool=settings.spark_pool, outlets=[BRONZE_FRAUD_REPORTS])
    def ingest_fraud_reports(ds: str | None = None, run_id: str | None = None) -> dict:
        from jobs.ingest import ingest_batch

        return ingest_batch(ds, "fraud_reports", run_id=run_id)

    wait_for_landing_files() >> ingest_transactions() >> ingest_fraud_reports()


ingest_daily()
