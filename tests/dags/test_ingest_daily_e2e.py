"""End to end: ingest_daily through dag.test() for two simulated days, checked against the files."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from jobs.config import REPO_ROOT
from jobs.simulate import Population, SimulationConfig, simulate, simulate_day

DAGS_DIR = REPO_ROOT / "dags"

START = date(2025, 11, 1)


def test_ingest_daily_two_days(airflow_db, settings, spark):
    cfg = SimulationConfig(start_date=START, days=2, n_customers=300, n_terminals=600, seed=99, bad_rows_rate=0.02)
    summary = simulate(cfg, settings.landing_dir)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR / "ingest_daily.py")).dags["ingest_daily"]
    pop = Population(cfg)
    for i in range(cfg.days):
        day = START + timedelta(days=i)
        run = dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
        assert run.state == "success", f"{day}: {run.state}"
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert states == dict.fromkeys(["wait_for_landing_files", "ingest_transactions", "ingest_fraud_reports"], "success")
        lines = (settings.landing_dir / "transactions" / f"{day}.csv").read_bytes().split(b"\n")
        rows_in_file = len(lines) - 2  # header and the final newline
        bronze = spark.sql(f"SELECT count(*) AS n FROM bronze.transactions WHERE batch_date = DATE'{day}'").collect()[0]["n"]
        quarantined = spark.sql(f"SELECT count(*) AS n FROM quarantine.transactions WHERE batch_date = DATE'{day}'").collect()[0]["n"]
        assert bronze + quarantined == rows_in_file
        assert bronze == len(simulate_day(cfg, pop, day))  # every clean transaction, and only those
        reports_in_file = len((settings.landing_dir / "fraud_reports" / f"{day}.csv").read_bytes().split(b"\n")) - 2
        reports = spark.sql(f"SELECT count(*) AS n FROM bronze.fraud_reports WHERE batch_date = DATE'{day}'").collect()[0]["n"]
        assert reports == reports_in_file
        log = spark.sql(
            f"SELECT source, rows_read, rows_accepted, rows_quarantined, run_id FROM ops.ingestion_log WHERE batch_date = DATE'{day}'"
        ).collect()
        assert {r["source"] for r in log} == {"transactions", "fraud_reports"}
        assert all(r["run_id"] == run.run_id for r in log)
    total_q = spark.sql(
        f"SELECT count(*) AS n FROM quarantine.transactions WHERE batch_date BETWEEN DATE'{START}' AND DATE'{START + timedelta(days=1)}'"
    ).collect()[0]["n"]
    assert total_q == sum(summary["bad_rows"].values())
