"""Validated ingestion on real Delta tables: quarantine reasons, reconciliation, idempotency.

Ingestion needs no JVM (delta-rs), and neither do these tests: tables are read with delta-rs too.
All tests share the session's lakehouse, so each uses dates of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest

from jobs.data.ingest import IngestionError, ingest, parse_file
from jobs.data.simulate import BAD_ROW_KINDS, SimulationConfig, bad_line, simulate

from tables import rows, snapshot

HEADER = b"transaction_id,tx_datetime,customer_id,terminal_id,tx_amount"


def good_rows(day: date, n: int, first: int = 1) -> list[bytes]:
    key = int(day.strftime("%Y%m%d")) * 100_000_000
    return [
        f"{key + i},{day} 1{i % 10}:00:0{i % 10},{i % 7},{i % 5},{10 + i}.25".encode() for i in range(first, first + n)
    ]


def write(settings, source: str, day: date, lines: list[bytes], suffix: str = ".csv"):
    path = settings.storage.landing_dir / source / f"{day}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + (b"\n" if lines else b""))
    return path


def batch_rows(settings, table: str, day: date):
    return rows(settings, table, day)


# --- every kind of bad row lands in quarantine with the right reason -----------------------------

KIND_DAY = date(2025, 6, 1)


@pytest.fixture(scope="module")
def kinds_batch(settings):
    """One file: 6 good rows, then one bad row of every kind; returns (result, line of each kind)."""
    good = good_rows(KIND_DAY, 6)
    lines, where = [HEADER, *good], {}
    for i, kind in enumerate(BAD_ROW_KINDS):
        where[kind] = len(lines) + 1  # 1-based line number in the file
        lines.append(bad_line(kind, KIND_DAY, good[i % len(good)], f"B{i}"))
    write(settings, "transactions", KIND_DAY, lines)
    return ingest(KIND_DAY, "transactions", settings=settings, run_id="test_kinds"), where


@pytest.mark.parametrize("kind", sorted(BAD_ROW_KINDS))
def test_each_bad_row_kind_is_quarantined_with_its_reason(kinds_batch, settings, kind):
    result, where = kinds_batch
    quarantined = {r["line_number"]: r for r in batch_rows(settings, "quarantine.transactions", KIND_DAY)}
    row = quarantined.get(where[kind])
    assert row is not None, f"{kind} line {where[kind]} not quarantined"
    assert row["reasons"] == [BAD_ROW_KINDS[kind]], (kind, row["reasons"])
    assert row["run_id"] == "test_kinds" and row["file_checksum"] == result.file_checksum


def test_kinds_batch_reconciles_and_keeps_good_rows(kinds_batch, settings):
    result, where = kinds_batch
    assert result.rows_read == 6 + len(BAD_ROW_KINDS)
    assert result.rows_accepted == 6 and result.rows_quarantined == len(BAD_ROW_KINDS)
    bronze = batch_rows(settings, "bronze.transactions", KIND_DAY)
    assert len(bronze) == 6
    assert {r["line_number"] for r in bronze} == set(range(2, 8))  # the originals, not the duplicate
    q = {r["line_number"]: r for r in batch_rows(settings, "quarantine.transactions", KIND_DAY)}
    assert q[where["non_numeric_amount"]]["raw_values"]["tx_amount"] == "12.5EUR"  # raw values as strings
    assert q[where["invalid_utf8"]]["raw_line"].count("\\xff") == 1  # undecodable bytes kept visibly
    assert q[where["blank_line"]]["raw_values"] is None


# --- reconciliation and idempotency ---------------------------------------------------------------


def test_simulated_days_reconcile_and_rerun_changes_nothing(settings):
    start = date(2025, 7, 1)
    summary = simulate(
        SimulationConfig(start_date=start, days=2, n_customers=300, n_terminals=600, seed=21, bad_rows_rate=0.03),
        settings.storage.landing_dir,
    )
    results = [
        ingest(start + timedelta(days=i), src, settings=settings)
        for i in range(2)
        for src in ("transactions", "fraud_reports")
    ]
    assert all(r.status == "succeeded" for r in results)
    for r in results:
        assert r.rows_read == r.rows_accepted + r.rows_quarantined
        day = date.fromisoformat(r.batch_date)
        assert len(batch_rows(settings, f"bronze.{r.source}", day)) == r.rows_accepted
        assert len(batch_rows(settings, f"quarantine.{r.source}", day)) == r.rows_quarantined
        log = rows(settings, "ops.ingestion_log", day, source=r.source)
        assert [(x["rows_read"], x["rows_accepted"], x["rows_quarantined"], x["status"]) for x in log] == [
            (r.rows_read, r.rows_accepted, r.rows_quarantined, "succeeded")
        ]
    tx = [r for r in results if r.source == "transactions"]
    assert sum(r.rows_quarantined for r in tx) == sum(summary["bad_rows"].values())
    assert sum(r.rows_accepted for r in tx) == summary["transactions"]

    before = snapshot(settings)
    again = ingest(start, "transactions", settings=settings)
    assert again.status == "skipped" and again.rows_accepted == tx[0].rows_accepted
    assert snapshot(settings) == before
    # a forced re-run (what a retried task does) converges to the same content
    forced = ingest(start, "transactions", settings=settings, force=True)
    assert forced.status == "succeeded" and forced.rows_accepted == tx[0].rows_accepted
    after = snapshot(settings)
    for name in ("bronze.transactions", "bronze.fraud_reports"):
        assert after[name][1] == before[name][1], name  # same rows, lineage included: unchanged rows are kept
    assert after["quarantine.transactions"][1][0] == before["quarantine.transactions"][1][0]


def test_duplicates_across_days_are_caught(settings):
    d1, d2 = date(2025, 8, 1), date(2025, 8, 2)
    first = good_rows(d1, 3)
    write(settings, "transactions", d1, [HEADER, *first])
    ingest(d1, "transactions", settings=settings)
    replay = first[1].replace(str(d1).encode(), str(d2).encode())  # same id, re-sent the next day
    write(settings, "transactions", d2, [HEADER, *good_rows(d2, 2), replay])
    result = ingest(d2, "transactions", settings=settings)
    assert (result.rows_accepted, result.rows_quarantined) == (2, 1)
    (q,) = batch_rows(settings, "quarantine.transactions", d2)
    assert q["reasons"] == ["transaction_id_unique_across_batches"]
    assert len(batch_rows(settings, "bronze.transactions", d1)) == 3


def test_extra_columns_are_kept_and_jsonl_is_accepted(settings):
    day = date(2025, 8, 10)
    lines = [
        json.dumps(
            {
                "transaction_id": "J1",
                "tx_datetime": f"{day} 08:00:00",
                "customer_id": "3",
                "terminal_id": "4",
                "tx_amount": 9.5,
                "channel": "online",
            }
        ).encode(),
        b"{not json",
        json.dumps(
            {
                "transaction_id": "J2",
                "tx_datetime": f"{day} 09:00:00",
                "customer_id": "3",
                "terminal_id": "4",
                "tx_amount": "-1",
            }
        ).encode(),
    ]
    write(settings, "transactions", day, lines, suffix=".jsonl")
    result = ingest(day, "transactions", settings=settings)
    assert (result.rows_read, result.rows_accepted, result.rows_quarantined) == (3, 1, 2)
    (row,) = batch_rows(settings, "bronze.transactions", day)
    assert row["transaction_id"] == "J1" and row["tx_amount"] == 9.5 and row["extra_fields"] == {"channel": "online"}
    assert result.reasons == {"invalid_json": 1, "tx_amount_in_range": 1}


def test_empty_and_header_only_files_ingest_zero_rows(settings):
    for day, content in ((date(2025, 8, 20), b""), (date(2025, 8, 21), HEADER + b"\n")):
        path = settings.storage.landing_dir / "transactions" / f"{day}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        result = ingest(day, "transactions", settings=settings)
        assert (result.status, result.rows_read, result.rows_accepted, result.rows_quarantined) == (
            "succeeded",
            0,
            0,
            0,
        )


def test_missing_file_fails_with_a_clear_message(settings):
    with pytest.raises(FileNotFoundError, match=r"no landing file for transactions on 2031-01-01.*2031-01-01\.csv"):
        ingest(date(2031, 1, 1), "transactions", settings=settings)


def test_unreadable_file_is_logged_and_fails_loudly(settings):
    day = date(2025, 8, 25)
    write(settings, "fraud_reports", day, [b"transaction_id,when", b"1,2025-08-25 10:00:00"])
    with pytest.raises(IngestionError, match="lacks required column.*reported_at"):
        ingest(day, "fraud_reports", settings=settings)
    (log,) = rows(settings, "ops.ingestion_log", day, source="fraud_reports")
    assert log["status"] == "failed" and "reported_at" in log["error"]
    assert not batch_rows(settings, "bronze.fraud_reports", day)


def test_fraud_report_rules(settings):
    day = date(2025, 9, 1)
    write(
        settings,
        "fraud_reports",
        day,
        [
            b"transaction_id,reported_at",
            b"T1,2025-09-01 10:00:00",
            b"T1,2025-09-01 11:00:00",  # reported twice in one file
            b"T2,2025-08-30 10:00:00",  # outside the file's day
            b"T3,yesterday",  # unparsable
            b",2025-09-01 12:00:00",  # no id
        ],
    )
    result = ingest(day, "fraud_reports", settings=settings)
    assert (result.rows_accepted, result.rows_quarantined) == (1, 4)
    reasons = {r["line_number"]: r["reasons"] for r in batch_rows(settings, "quarantine.fraud_reports", day)}
    assert reasons == {
        3: ["transaction_id_unique_in_batch"],
        4: ["reported_at_in_batch_day"],
        5: ["reported_at_parsable"],
        6: ["transaction_id_not_null"],
    }


def test_parse_counts_every_physical_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(HEADER + b'\r\n1,2025-01-01 00:00:00,1,1,1.0\r\n\r\n2,"a,b",1,1,1.0\n')
    parsed = parse_file(path)
    assert parsed.rows_read == 3 and len(parsed.records) == 2 and [r[2] for r in parsed.rejects] == ["blank_line"]
    assert list(parsed.records["tx_datetime"]) == ["2025-01-01 00:00:00", "a,b"]


def test_cli_prints_a_json_summary_as_its_last_line(tmp_path):
    """The module entry point, in its own process and lakehouse."""
    env = {**os.environ, "PIPELINE_DATA_DIR": str(tmp_path / "data")}
    day = date(2025, 10, 1)
    landing = tmp_path / "data" / "landing" / "transactions"
    landing.mkdir(parents=True)
    (landing / f"{day}.csv").write_bytes(b"\n".join([HEADER, *good_rows(day, 4), b"x,,1,1,1"]) + b"\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.data.ingest", "--date", str(day)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["rows_read"], summary["rows_accepted"], summary["rows_quarantined"]) == (5, 4, 1)
    missing = subprocess.run(
        [sys.executable, "-m", "jobs.data.ingest", "--date", "2030-01-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert missing.returncode == 1 and "no landing file" in missing.stderr


def test_redelivered_file_replaces_the_days_rows(settings):
    """A corrected file for a day converges bronze to exactly that file's valid rows."""
    day = date(2025, 9, 10)
    delivered = good_rows(day, 5)
    write(settings, "transactions", day, [HEADER, *delivered])
    assert ingest(day, "transactions", settings=settings).rows_accepted == 5
    corrected = [
        delivered[0],
        delivered[1].replace(b".25", b".75"),
        delivered[2],
    ]  # two rows withdrawn, one amount fixed
    write(settings, "transactions", day, [HEADER, *corrected])
    result = ingest(day, "transactions", settings=settings)
    assert result.status == "succeeded" and result.rows_accepted == 3
    bronze = {r["transaction_id"]: r["tx_amount"] for r in batch_rows(settings, "bronze.transactions", day)}
    assert len(bronze) == 3 and bronze[delivered[1].split(b",")[0].decode()] == 12.75


def test_ids_are_compared_after_trimming_across_days(settings):
    d1, d2 = date(2025, 9, 20), date(2025, 9, 21)
    write(settings, "transactions", d1, [HEADER, b"T-SPACE,2025-09-20 10:00:00,1,1,5.00"])
    ingest(d1, "transactions", settings=settings)
    write(settings, "transactions", d2, [HEADER, b" T-SPACE ,2025-09-21 10:00:00,1,1,5.00"])
    result = ingest(d2, "transactions", settings=settings)
    assert (result.rows_accepted, result.rows_quarantined) == (0, 1)
    assert result.reasons == {"transaction_id_unique_across_batches": 1}


def test_jsonl_with_only_bad_lines_is_quarantined_not_failed(settings):
    day = date(2025, 9, 25)
    write(settings, "transactions", day, [b"{oops", b"[1, 2]", b""], suffix=".jsonl")
    result = ingest(day, "transactions", settings=settings)
    assert (result.status, result.rows_read, result.rows_accepted, result.rows_quarantined) == ("succeeded", 3, 0, 3)
    assert result.reasons == {"blank_line": 1, "invalid_json": 2}


def test_clashing_header_names_make_the_file_unreadable(settings):
    day = date(2025, 9, 26)
    write(settings, "transactions", day, [HEADER + b",reasons", b"1,2025-09-26 10:00:00,1,1,5.00,x"])
    with pytest.raises(IngestionError, match="reserved column"):
        ingest(day, "transactions", settings=settings)
