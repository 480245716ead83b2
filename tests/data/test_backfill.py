"""``jobs.backfill``: a range of days ingested, transformed and featurized in one Spark session.

The session's shared history (tests/conftest.py) is built by it; here its summary is checked
against the simulator and the tables.
"""

from __future__ import annotations


def test_backfill_of_the_shared_history_reconciles_with_the_simulator(history_backfill, spark, settings):
    cfg, simulated, summary, days = history_backfill
    first, last = days[0], days[-1]
    assert summary["days"] == len(days) == cfg.days
    # no malformed rows in this history: every transaction and report is accepted
    assert summary["rows_quarantined"] == 0
    assert summary["rows_accepted"] == simulated["transactions"] + simulated["reports"]
    assert summary["feature_rows"] == simulated["transactions"]
    assert {"ingest", "ingest_transactions", "ingest_fraud_reports", "dbt", "features", "total"} == set(
        summary["seconds"]
    )

    count = lambda sql: spark.sql(sql).collect()[0][0]
    in_range = f"batch_date BETWEEN DATE'{first}' AND DATE'{last}'"
    assert count(f"SELECT count(*) FROM bronze.transactions WHERE {in_range}") == simulated["transactions"]
    assert count(f"SELECT count(*) FROM bronze.fraud_reports WHERE {in_range}") == simulated["reports"]
    assert count(f"SELECT count(*) FROM marts.fct_transactions WHERE {in_range}") == simulated["transactions"]
    assert count(f"SELECT count(*) FROM features.transaction_features WHERE {in_range}") == simulated["transactions"]
    # every file of the range is in the ingestion log, under the backfill's run id
    log = spark.sql(
        f"SELECT source, batch_date, status, run_id FROM ops.ingestion_log WHERE {in_range} AND source IN ('transactions', 'fraud_reports')"
    ).collect()
    assert {(r["source"], r["batch_date"]) for r in log} == {
        (s, d) for s in ("transactions", "fraud_reports") for d in days
    }
    assert {(r["status"], r["run_id"]) for r in log} == {("succeeded", f"backfill__{first}_{last}")}
    # labels as of the last day; the online state written for the last day only
    assert count(f"SELECT count(*) FROM marts.fct_transactions WHERE {in_range} AND label_status = 'fraud'") > 0
    states = {r[0] for r in spark.sql("SELECT DISTINCT state_date FROM features.customer_state").collect()}
    assert last in states and not states & set(days[:-1])
