"""dbt on real Spark/Delta: labels as of a date, and incremental history equal to a full refresh.

The full `dbt build` (every model, data test and unit test) runs in the data_pipeline end-to-end
test through Airflow; here the models run directly, several times, to compare histories.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from deltalake import DeltaTable

from jobs.platform import delta
from jobs.platform.dbt_runner import run_dbt

from tables import restore

FCT = "marts.fct_transactions"
FCT_COLUMNS = (
    "transaction_id, tx_datetime, tx_date, customer_id, terminal_id, tx_amount, label_status, is_fraud, "
    "reported_at, report_known_at, label_available_at, batch_date, source_ingested_at"
)


def _fct(spark):
    return sorted(tuple(r) for r in spark.sql(f"SELECT {FCT_COLUMNS} FROM marts.fct_transactions").collect())


def _bronze_amount(spark, transaction_id):
    return spark.sql(f"SELECT tx_amount FROM bronze.transactions WHERE transaction_id = '{transaction_id}'").first()[0]


def _status_counts(spark, days):
    rows = spark.sql(
        f"SELECT label_status, count(*) AS n FROM marts.fct_transactions "
        f"WHERE batch_date BETWEEN DATE'{days[0]}' AND DATE'{days[-1]}' GROUP BY label_status"
    ).collect()
    return {r["label_status"]: r["n"] for r in rows}


def _assert_labels_follow_bronze(spark, days) -> None:
    """Every label of the mart as of the last day equals the one recomputed from bronze in plain Python."""
    as_of_end = datetime.combine(days[-1] + timedelta(days=1), time())
    # The earliest report per transaction, and the day of its file (a report is known when that day ends).
    reports: dict[str, tuple] = {}
    for r in spark.sql("SELECT transaction_id, reported_at, batch_date FROM bronze.fraud_reports").collect():
        mine = (r["reported_at"], r["batch_date"])
        reports[r["transaction_id"]] = min(reports.get(r["transaction_id"], mine), mine)
    transactions = spark.sql(
        f"SELECT transaction_id, tx_datetime FROM bronze.transactions WHERE batch_date BETWEEN DATE'{days[0]}' AND DATE'{days[-1]}'"
    ).collect()
    fct = {
        r["transaction_id"]: r
        for r in spark.sql(
            f"SELECT transaction_id, label_status, label_available_at, report_known_at FROM marts.fct_transactions "
            f"WHERE batch_date BETWEEN DATE'{days[0]}' AND DATE'{days[-1]}'"
        ).collect()
    }
    assert len(fct) == len(transactions) > 0
    statuses = set()
    for tx in transactions:
        reported, file_day = reports.get(tx["transaction_id"], (None, None))
        if reported is not None and reported < tx["tx_datetime"]:
            reported = None
        known = None if reported is None else datetime.combine(file_day + timedelta(days=1), time())
        if reported is not None and reported < as_of_end:
            expected, available = "fraud", reported
        elif tx["tx_datetime"] + timedelta(days=2) <= as_of_end:
            expected, available = "genuine", tx["tx_datetime"] + timedelta(days=2)
        else:
            expected, available = "pending", None
        row = fct[tx["transaction_id"]]
        assert (row["label_status"], row["label_available_at"]) == (expected, available), tx["transaction_id"]
        assert row["report_known_at"] == known, tx["transaction_id"]
        statuses.add(expected)
    assert statuses == {"fraud", "genuine", "pending"}


def test_incremental_history_equals_full_refresh_and_labels_follow_reports(history, settings, spark):
    days = history
    quick = settings.override(data={"label_maturity_days": 2})  # labels mature inside the simulated days
    bronze = DeltaTable(str(delta.path(settings, "bronze.transactions")))
    versions = {"bronze.transactions": bronze.version(), FCT: delta.version(settings, FCT)}
    try:
        run_dbt(
            ["run", "--select", "+fct_transactions", "--full-refresh", "--quiet"], quick, vars={"as_of": str(days[0])}
        )
        first = _status_counts(spark, days)
        for day in (days[2], days[4]):
            run_dbt(["run", "--select", "fct_transactions", "--quiet"], quick, vars={"as_of": str(day)})
        # A corrected landing file withdraws one transaction and re-delivers another with a new amount
        # (ingestion deletes the first from bronze and stamps the second with its own ingestion time).
        withdrawn, corrected = (
            r[0] for r in spark.sql(f"SELECT transaction_id FROM {FCT} ORDER BY 1 LIMIT 2").collect()
        )
        bronze.delete(f"transaction_id = '{withdrawn}'")
        bronze.update(
            updates={"tx_amount": "tx_amount + 1000", "ingested_at": "ingested_at + interval '1 day'"},
            predicate=f"transaction_id = '{corrected}'",
        )
        run_dbt(["run", "--select", "fct_transactions", "--quiet"], quick, vars={"as_of": str(days[-1])})
        incremental = _fct(spark)
        last = _status_counts(spark, days)
        run_dbt(
            ["run", "--select", "fct_transactions", "--full-refresh", "--quiet"], quick, vars={"as_of": str(days[-1])}
        )
        full = _fct(spark)
        _assert_labels_follow_bronze(spark, days)  # before bronze goes back: the labels of the corrected files
    finally:  # the history is shared: bronze and the mart back as the backfill left them (Delta time travel)
        restore(settings, versions)

    assert incremental == full
    amounts = {row[0]: row[5] for row in incremental}
    assert withdrawn not in amounts and amounts[corrected] == _bronze_amount(spark, corrected) + 1000
    # The runs did move labels: pending transactions matured or were reported in between.
    assert first.get("pending", 0) > last.get("pending", 0) and last.get("genuine", 0) > first.get("genuine", 0)


def test_dbt_unit_tests_pass(history, settings):
    result = run_dbt(["test", "--select", "test_type:unit", "--quiet"], settings)
    outcomes = {r.node.name: str(r.status) for r in result.result.results if r.node.resource_type == "unit_test"}
    assert len(outcomes) == 2 and set(outcomes.values()) == {"pass"}, outcomes
    # the on-run-start hook registered the bronze sources (written by delta-rs) in the catalog first
    hooks = [r for r in result.result.results if r.node.resource_type == "operation"]
    assert [str(r.status) for r in hooks] == ["success"]


def test_source_freshness_and_docs_generate(history, settings, spark):
    import json

    result = run_dbt(["source", "freshness", "--quiet"], settings)
    checked = {r.node.name: str(r.status) for r in result.result.results if r.node.resource_type == "source"}
    assert checked == {"transactions": "pass", "fraud_reports": "pass"}  # just ingested; references have no freshness

    run_dbt(["docs", "generate", "--quiet"], settings)
    target = settings.dbt.project_dir / "target"
    catalog = json.loads((target / "catalog.json").read_text())
    fct = catalog["nodes"]["model.fraud_pipeline.fct_transactions"]
    assert {"label_status", "label_available_at", "reported_at"} <= set(fct["columns"])
    manifest = json.loads((target / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) == 8 and all(m["description"] for m in models)
    # Every column that exists in the warehouse is described in the YAML.
    for m in models:
        described = {c for c, col in m["columns"].items() if col["description"]}
        actual = set(catalog["nodes"][m["unique_id"]]["columns"])
        assert actual <= described, (m["name"], actual - described)


def test_the_customers_mart_holds_coarse_home_cells_not_coordinates(history, settings):
    """Home coordinates are personal data: the mart dashboards read keeps only the 10-unit cell."""
    from tables import rows

    dims = rows(settings, "marts.dim_customers")
    assert dims and not {"x_location", "y_location"} & set(dims[0])
    cells = {(d["home_cell_x"], d["home_cell_y"]) for d in dims if d["in_reference"]}
    assert all(x % 10 == 0 and y % 10 == 0 and 0 <= x <= 90 and 0 <= y <= 90 for x, y in cells)
    assert len(cells) > 10  # coarse, not constant
    assert "x_location" in rows(settings, "bronze.customers")[0]  # the exact ones stay in the bronze snapshot
