"""maintain_lakehouse: weekly Delta maintenance that keeps every registered model reproducible.

Sundays 04:00 UTC (before Monday's training). ``plan`` reads from the registry which Delta versions
registered, non-archived model versions pin and logs each table's VACUUM retention: the configured one
(``PIPELINE_VACUUM_RETENTION_HOURS``, a week by default), or longer where a pin is older.
``optimize_and_vacuum`` (Spark, in the one-slot Spark pool) compacts small files, vacuums with that
retention, and fails if any pinned version lost a file. Logic: :mod:`jobs.governance.lakehouse`
(``make maintain`` runs it without Airflow). Archive a version (``python -m jobs.release.registry
archive``) to let the next run reclaim what only it pinned.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task

from jobs.config import get_settings

settings = get_settings()


@dag(
    dag_id="maintain_lakehouse",
    description="OPTIMIZE and VACUUM the Delta tables, never removing a version a registered model pins",
    schedule=CronTriggerTimetable("0 4 * * 0", timezone="UTC"),
    start_date=pendulum.instance(settings.airflow.start_datetime),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["maintenance", "delta"],
    doc_md=__doc__,
    params={
        "retention_hours": Param(
            settings.maintenance.vacuum_retention_hours,
            type="number",
            minimum=0,
            description="VACUUM retention (hours) for versions no registered model pins",
        ),
        "tables": Param(
            [],
            type="array",
            items={"type": "string"},
            description="only these tables (schema.table); empty = every Delta table of the lakehouse",
        ),
    },
)
def maintain_lakehouse():
    def _settings(params: dict):
        from jobs.config import get_settings

        return get_settings().override(maintenance={"vacuum_retention_hours": float(params["retention_hours"])})

    @task
    def plan(params: dict | None = None) -> list[dict]:
        """Which versions are pinned, by which model versions, and each table's retention (no Spark)."""
        from jobs.governance.lakehouse import plan as make_plan

        return [
            {"table": p.table, "latest": p.latest, "pinned": sorted(p.pinned), "retention_hours": p.retention_hours}
            for p in make_plan(_settings(params), params["tables"] or None)
        ]

    @task(pool=settings.airflow.spark_pool)
    def optimize_and_vacuum(params: dict | None = None) -> dict:
        from jobs.governance.lakehouse import maintain

        return maintain(_settings(params), params["tables"] or None)

    plan() >> optimize_and_vacuum()


maintain_lakehouse()
