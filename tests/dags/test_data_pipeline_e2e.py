"""End to end: data_pipeline through dag.test() on simulated days, then re-runs and failures.

Real files, real Spark/Delta, real dbt (every model and data test, through cosmos's watcher tasks),
real Great Expectations. Checked against the landing files, not against itself.

1. A first day, end to end (``DAYS`` days in a row: one, since its incremental re-run in 2. and the
   failing dbt test's new day in 3. run dbt incrementally through Airflow again; a second successful day
   cost about 35 s, run alone, and checked nothing they do not). The day after is ingested before
   the run, so its fraud reports (about the first day) are in bronze all along: a run that ignored its
   own date as ``as_of`` would label those transactions fraud, one that honours it keeps them pending.
2. Re-runs: the last day run again through ``dag.test()`` (which clears the run first), then one
   task cleared and re-run alone: every table's rows hash the same, nothing duplicated.
3. Failure stops the line: a feature validation failure, and a failing dbt test, fail their task,
   the tasks after them do not run, and the feature Asset is not emitted (training does not start).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from jobs.data.ingest import SOURCES, ingest
from jobs.data.simulate import Population, SimulationConfig, simulate, simulate_day
from jobs.features.build import OUTPUT_TABLES as FEATURE_TABLES
from jobs.platform import delta
from jobs.platform.lakehouse import REPORT_TABLES

from tables import INGESTION_TABLES, digest, restore, rows

START = date(2025, 11, 1)
DAYS = 1
DERIVED_TABLES = tuple(t for t in REPORT_TABLES if t.split(".")[0] in ("marts", "features"))
WRITE_TIME_COLUMNS = ("computed_at",)  # when a feature row was computed: differs by design between runs


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _lakehouse(settings) -> dict:
    """Delta version and row digest of every table the pipeline writes."""
    return {
        t: (delta.version(settings, t), digest(settings, t, WRITE_TIME_COLUMNS))
        for t in INGESTION_TABLES + DERIVED_TABLES
    }


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _feature_asset_events(run) -> int:
    """Events of the feature Asset emitted by ``run`` (what starts train_model)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "features.transaction_features", AssetEvent.source_run_id == run.run_id)
        )


@pytest.fixture(scope="module")
def pipeline_days(airflow_db, settings, spark, load_dag):
    """The simulated days, the runs of the first ``DAYS`` days, and the DAG (scenario 1 runs here)."""
    cfg = SimulationConfig(
        start_date=START, days=DAYS + 1, n_customers=200, n_terminals=400, seed=99, bad_rows_rate=0.02
    )
    summary = simulate(cfg, settings.storage.landing_dir)
    ahead = START + timedelta(days=DAYS)  # delivered early: its reports are about the days below
    early = [ingest(ahead, source, settings=settings) for source in ("transactions", "fraud_reports")]
    assert early[1].rows_accepted > 0
    dag = load_dag("data_pipeline")
    pop = Population(cfg)
    dbt_tasks = {t.task_id for t in dag.tasks if t.task_id.startswith("dbt.")}
    assert any(t.endswith(".run") for t in dbt_tasks) and any(t.endswith(".test") for t in dbt_tasks)
    runs = []
    for i in range(DAYS):
        day = START + timedelta(days=i)
        run = dag.test(logical_date=_utc(day))
        runs.append(run)
        states = _states(run)
        assert run.state == "success", f"{day}: {run.state} {states}"
        assert set(states) == {t.task_id for t in dag.tasks}
        assert set(states.values()) == {"success"}, {k: v for k, v in states.items() if v != "success"}
        assert _feature_asset_events(run) == 1

        # Nothing lost at ingestion.
        lines = (settings.storage.landing_dir / "transactions" / f"{day}.csv").read_bytes().split(b"\n")
        rows_in_file = len(lines) - 2  # header and the final newline
        count = lambda sql: spark.sql(sql).collect()[0][0]
        bronze = count(f"SELECT count(*) FROM bronze.transactions WHERE batch_date = DATE'{day}'")
        quarantined = count(f"SELECT count(*) FROM quarantine.transactions WHERE batch_date = DATE'{day}'")
        assert bronze + quarantined == rows_in_file
        assert bronze == len(simulate_day(cfg, pop, day))
        # Marts and features carry exactly the day's accepted transactions.
        assert count(f"SELECT count(*) FROM marts.fct_transactions WHERE batch_date = DATE'{day}'") == bronze
        assert count(f"SELECT count(*) FROM features.transaction_features WHERE batch_date = DATE'{day}'") == bronze
        log = spark.sql(f"SELECT source, run_id FROM ops.ingestion_log WHERE batch_date = DATE'{day}'").collect()
        assert {r["source"] for r in log} >= {"transactions", "fraud_reports"}
        assert all(r["run_id"] == run.run_id for r in log if r["source"] in ("transactions", "fraud_reports"))
        # The run labelled every transaction as of its own date (dbt var as_of = ds): fraud only if
        # the report was filed before the end of the day, pending otherwise (nothing matured in 3 days).
        end = datetime(day.year, day.month, day.day) + timedelta(days=1)
        labels = spark.sql(
            "SELECT f.transaction_id, f.label_status, min(r.reported_at) AS reported_at FROM marts.fct_transactions f "
            "LEFT JOIN bronze.fraud_reports r ON r.transaction_id = f.transaction_id "
            f"WHERE f.batch_date BETWEEN DATE'{START}' AND DATE'{ahead}' GROUP BY f.transaction_id, f.label_status"
        ).collect()
        expected = {
            r["transaction_id"]: "fraud" if r["reported_at"] is not None and r["reported_at"] < end else "pending"
            for r in labels
        }
        assert {r["transaction_id"]: r["label_status"] for r in labels} == expected
        later = sum(1 for r in labels if r["reported_at"] is not None and r["reported_at"] >= end)
        assert later > 0  # reports from after the run date exist in bronze, and did not count

    total_q = count(
        f"SELECT count(*) FROM quarantine.transactions WHERE batch_date BETWEEN DATE'{START}' AND DATE'{ahead}'"
    )
    assert total_q == sum(summary["bad_rows"].values()) and early[0].rows_quarantined > 0
    dims = count("SELECT count(*) FROM marts.dim_customers WHERE in_reference")
    assert dims == cfg.n_customers  # the reference snapshot reached the dimension
    return dag, runs


def test_data_pipeline_runs_each_day_end_to_end(pipeline_days):
    dag, runs = pipeline_days
    assert [r.state for r in runs] == ["success"] * DAYS


def test_rerun_of_a_day_and_of_one_cleared_task_changes_no_row(pipeline_days, settings):
    dag, _ = pipeline_days
    day = START + timedelta(days=DAYS - 1)
    before = _lakehouse(settings)
    assert all(d is not None for _, d in before.values())

    again = dag.test(logical_date=_utc(day))  # dag.test clears the day's run, then runs it again
    assert again.state == "success", _states(again)
    after = _lakehouse(settings)
    for table in INGESTION_TABLES:  # files already ingested with the same checksum: not even a new version
        assert after[table] == before[table], table
    for table in DERIVED_TABLES:  # rewritten (a new version), the same rows
        assert after[table][1] == before[table][1], table

    # One task cleared and re-run alone: every other task of the run is marked done, not run.
    cleared = dag.test(logical_date=_utc(day), mark_success_pattern=r"(?!build_features$).*")
    assert cleared.state == "success", _states(cleared)
    assert delta.version(settings, "features.transaction_features") > after["features.transaction_features"][0]
    assert {t: d for t, (_, d) in _lakehouse(settings).items()} == {t: d for t, (_, d) in before.items()}
    features = rows(settings, "features.transaction_features", day)
    assert len(features) == len({f["transaction_id"] for f in features})


def _no_retries(dag):
    """The failure under test is in the data: a retry would fail the same way (and dag.test would wait it out)."""
    for t in dag.tasks:
        t.retries = 0
    return dag


def test_a_feature_validation_failure_stops_the_line(pipeline_days, settings, spark):
    """A validation failure fails at once (no retry: the data would fail again) and emits no Asset."""
    dag, _ = pipeline_days
    day = START  # already built; marts changed behind the pipeline's back: one negative amount
    victim = spark.sql(
        f"SELECT transaction_id, tx_amount FROM marts.fct_transactions WHERE batch_date = DATE'{day}' "
        "ORDER BY transaction_id LIMIT 1"
    ).first()
    where = f"batch_date = DATE'{day}' AND transaction_id = '{victim['transaction_id']}'"
    touched = ("marts.fct_transactions", *FEATURE_TABLES)
    versions = {t: delta.version(settings, t) for t in touched}
    spark.sql(f"UPDATE marts.fct_transactions SET tx_amount = -1.0 WHERE {where}")
    try:
        run = dag.test(logical_date=_utc(day), mark_success_pattern=r"(?!build_features$|validate_features$).*")
        states = _states(run)
        assert run.state == "failed", states
        assert (states["build_features"], states["validate_features"]) == ("success", "failed")
        assert _feature_asset_events(run) == 0
        # the failure is recorded, and monitoring's data-quality check alerts on it
        from jobs.config import load_monitoring_config
        from jobs.monitoring.checks import data_quality

        checks = {(r.source, r.metric): r for r in data_quality(settings, day, None, load_monitoring_config(settings))}
        failed = checks[("features", "failed_expectations")]
        assert failed.status == "alert" and failed.value >= 1 and "tx_amount" in failed.detail, failed
    finally:  # the session's lakehouse is shared: the mart and the features back as they were (time travel)
        restore(settings, versions)
    assert (
        rows(settings, "marts.fct_transactions", day, transaction_id=victim["transaction_id"])[0]["tx_amount"]
        == victim["tx_amount"]
    )


def test_a_failing_dbt_test_stops_the_line(pipeline_days, settings, spark):
    from deltalake import DeltaTable

    dag, _ = pipeline_days
    day = START + timedelta(days=DAYS)  # ingested early; a writer that bypassed validation adds a bad row
    spec = SOURCES["transactions"].bronze
    good = rows(settings, "bronze.transactions", day)[0]
    bad = {**good, "transaction_id": good["transaction_id"] + "X", "tx_amount": -5.0}
    delta.append(settings, spec, pa.Table.from_pylist([bad], spec.schema))
    try:
        run = _no_retries(dag).test(logical_date=_utc(day))
        states = _states(run)
        assert run.state == "failed", states
        failed_tests = [t for t, s in states.items() if t.startswith("dbt.") and s == "failed"]
        assert any("fct_transactions" in t for t in failed_tests), states
        assert states["build_features"] == "upstream_failed" and states["validate_features"] == "upstream_failed"
        assert _feature_asset_events(run) == 0
        assert not rows(settings, "features.transaction_features", day)
    finally:  # the session's lakehouse is shared: remove the bad row wherever it reached
        DeltaTable(str(delta.path(settings, spec.name))).delete(f"transaction_id = '{bad['transaction_id']}'")
        spark.sql(f"DELETE FROM marts.fct_transactions WHERE transaction_id = '{bad['transaction_id']}'")
