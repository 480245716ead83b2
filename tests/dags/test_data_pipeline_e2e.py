"""End to end: data_pipeline through dag.test() for three simulated days (catch-up over a range).

Real files, real Spark/Delta, real dbt (every model, data test and unit test, through cosmos's
watcher tasks), real Great Expectations. Checked against the landing files, not against itself.
The fourth simulated day is ingested before the runs, so its fraud reports (about the first three
days) are in bronze all along: a run that ignored its own date as ``as_of`` would label those
transactions fraud, one that honours it keeps them pending.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from jobs.data.ingest import ingest
from jobs.data.simulate import Population, SimulationConfig, simulate, simulate_day

START = date(2025, 11, 1)
DAYS = 3


def test_data_pipeline_three_days(airflow_db, settings, spark, load_dag):
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
    for i in range(DAYS):
        day = START + timedelta(days=i)
        run = dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC))
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert run.state == "success", f"{day}: {run.state} {states}"
        assert set(states) == {t.task_id for t in dag.tasks}
        assert set(states.values()) == {"success"}, {k: v for k, v in states.items() if v != "success"}

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
