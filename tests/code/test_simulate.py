"""The simulator: determinism, the handbook's fraud scenarios, report delays, drift, bad rows."""

from __future__ import annotations

import filecmp
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from jobs.data.simulate import (
    BAD_ROW_KINDS,
    Population,
    SimulationConfig,
    bad_line,
    simulate,
    simulate_day,
)

START = date(2026, 2, 1)


def _all_files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_arguments_give_byte_identical_files(tmp_path):
    cfg = SimulationConfig(start_date=START, days=4, n_customers=300, n_terminals=600, seed=3, bad_rows_rate=0.02)
    simulate(cfg, tmp_path / "a")
    simulate(cfg, tmp_path / "b")
    files = _all_files(tmp_path / "a")
    assert len(files) == 2 + 2 * 4
    assert files == _all_files(tmp_path / "b")
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False)
    assert not mismatch and not errors


def test_adjacent_ranges_join_seamlessly(tmp_path):
    """A day's files depend on the day and the arguments only, not on the range it was generated in."""
    base = dict(n_customers=300, n_terminals=600, seed=5)
    simulate(SimulationConfig(start_date=START, days=5, **base), tmp_path / "whole")
    simulate(SimulationConfig(start_date=START + timedelta(days=3), days=2, **base), tmp_path / "tail")
    for sub in ("transactions", "fraud_reports"):
        for d in ("2026-02-04", "2026-02-05"):
            assert (tmp_path / "whole" / sub / f"{d}.csv").read_bytes() == (
                tmp_path / "tail" / sub / f"{d}.csv"
            ).read_bytes()


def test_different_seed_gives_different_data(tmp_path):
    simulate(SimulationConfig(start_date=START, days=1, n_customers=200, n_terminals=400, seed=1), tmp_path / "a")
    simulate(SimulationConfig(start_date=START, days=1, n_customers=200, n_terminals=400, seed=2), tmp_path / "b")
    assert (tmp_path / "a/transactions/2026-02-01.csv").read_bytes() != (
        tmp_path / "b/transactions/2026-02-01.csv"
    ).read_bytes()


@pytest.fixture(scope="module")
def month():
    cfg = SimulationConfig(start_date=START, days=30, n_customers=2000, n_terminals=4000, seed=11)
    pop = Population(cfg)
    frames = [simulate_day(cfg, pop, START + timedelta(days=i)) for i in range(cfg.days)]
    return cfg, pop, pd.concat(frames, ignore_index=True)


def test_population_follows_the_handbook_design(month):
    cfg, pop, tx = month
    assert pop.cust_xy.min() >= 0 and pop.cust_xy.max() <= 100
    assert pop.mean_amount.min() >= 5 and pop.mean_amount.max() <= 100
    np.testing.assert_allclose(pop.std_amount, pop.mean_amount / 2)
    # each customer only uses terminals within the radius
    d = np.hypot(*(pop.cust_xy[tx["customer_id"]] - pop.term_xy[tx["terminal_id"]]).T)
    assert d.max() <= cfg.radius + 1e-9
    # daily count ~ Poisson(U(0, 4)): about 2 a day on average, minus the few times outside the day
    per_customer_day = len(tx) / (cfg.n_customers * cfg.days)
    assert 1.7 < per_customer_day < 2.1
    seconds = (tx["tx_datetime"] - tx["tx_datetime"].dt.normalize()).dt.total_seconds()
    assert abs(seconds.mean() - 43_200) < 600 and 18_000 < seconds.std() < 21_000


def test_fraud_rate_and_each_scenario_in_expected_band(month):
    cfg, pop, tx = month
    n = len(tx)
    share = tx["tx_fraud_scenario"].value_counts() / n
    # scenario 2: 2 new terminals a day, compromised 28 days -> about 56 of 4000 terminals
    assert 0.5 * 56 / 4000 < share[2] < 1.6 * 56 / 4000
    # scenario 3: 3 customers a day for 14 days -> 42 of 2000 customers, a third of their transactions
    assert 0.4 * 42 / 2000 / 3 < share[3] < 1.6 * 42 / 2000 / 3
    # scenario 1: only amounts above 220 (rare: top spenders' tail)
    assert 0 < share.get(1, 0) < 0.005
    assert (tx.loc[tx["tx_fraud_scenario"] == 1, "tx_amount"] > 220).all()
    assert 0.01 < tx["tx_fraud"].mean() < 0.04
    assert ((tx["tx_fraud"] == 1) == (tx["tx_fraud_scenario"] > 0)).all()


def test_scenario_three_multiplies_amounts_by_five(month):
    cfg, pop, tx = month
    s3 = tx[tx["tx_fraud_scenario"] == 3]
    ratio = s3["tx_amount"].to_numpy() / pop.mean_amount[s3["customer_id"].to_numpy()]
    assert np.median(ratio) > 3.5


def test_every_report_comes_one_to_seven_days_after_its_transaction(tmp_path):
    cfg = SimulationConfig(start_date=START, days=16, n_customers=500, n_terminals=1000, seed=9)
    simulate(cfg, tmp_path)
    tx = pd.concat(
        pd.read_csv(p, parse_dates=["tx_datetime"]) for p in sorted((tmp_path / "transactions").glob("*.csv"))
    )
    rep = pd.concat(
        pd.read_csv(p, parse_dates=["reported_at"]) for p in sorted((tmp_path / "fraud_reports").glob("*.csv"))
    )
    assert rep["transaction_id"].is_unique
    known = rep.merge(tx, on="transaction_id", how="inner")
    delay = (known["reported_at"].dt.normalize() - known["tx_datetime"].dt.normalize()).dt.days
    assert delay.between(1, 7).all() and set(delay) == set(range(1, 8))
    assert (known["reported_at"] > known["tx_datetime"]).all()
    # every fraud of the first nine days is reported within the simulated range, exactly once
    truth = pd.concat(simulate_day(cfg, Population(cfg), START + timedelta(days=i)) for i in range(9))
    frauds = set(truth.loc[truth["tx_fraud"] == 1, "transaction_id"])
    assert frauds and frauds <= set(rep["transaction_id"])
    # the file of a report is the day of the report
    for p in (tmp_path / "fraud_reports").glob("*.csv"):
        day = pd.read_csv(p, parse_dates=["reported_at"])["reported_at"].dt.date
        assert (day.astype(str) == p.stem).all()


@pytest.mark.parametrize("scenario", ["amount_shift", "new_terminals", "new_fraud_pattern"])
def test_drift_scenarios_change_the_data_from_their_start(scenario):
    drift_start = START + timedelta(days=5)
    base = SimulationConfig(start_date=START, days=10, n_customers=800, n_terminals=1600, seed=4)
    drifted = SimulationConfig(
        start_date=START, days=10, n_customers=800, n_terminals=1600, seed=4, drift=scenario, drift_start=drift_start
    )
    pb, pd_ = Population(base), Population(drifted)
    before = [simulate_day(base, pb, START + timedelta(days=i)) for i in range(5)]
    assert all(a.equals(simulate_day(drifted, pd_, START + timedelta(days=i))) for i, a in enumerate(before))
    after_base = pd.concat(simulate_day(base, pb, START + timedelta(days=i)) for i in range(5, 10))
    after = pd.concat(simulate_day(drifted, pd_, START + timedelta(days=i)) for i in range(5, 10))
    if scenario == "amount_shift":
        assert after["tx_amount"].median() > 1.4 * after_base["tx_amount"].median()
    elif scenario == "new_terminals":
        new = after["terminal_id"] >= 1600
        assert (
            new.mean() > 0.2
            and (pd_.terminals_frame()["first_active_date"].iloc[1600:] == drift_start.isoformat()).all()
        )
    else:
        pattern = after[after["tx_fraud_scenario"] == 4]
        # 8% of the 800 cards a day, 4 to 8 probes each, tiny and at night: a quarter more transactions
        per_day = pattern.groupby(pattern["tx_datetime"].dt.date)
        assert (per_day["customer_id"].nunique() == 64).all() and per_day.size().between(4 * 64, 8 * 64).all()
        assert (pattern.groupby([pattern["tx_datetime"].dt.date, "customer_id"]).size().between(4, 8)).all()
        assert (pattern["tx_amount"] < 3.01).all() and (pattern["tx_datetime"].dt.hour < 6).all()
        assert len(pattern) > 0.15 * len(after_base)


def test_bad_rows_rate_injects_every_kind_and_keeps_clean_rows(tmp_path):
    cfg = SimulationConfig(start_date=START, days=1, n_customers=3000, n_terminals=3000, seed=1, bad_rows_rate=0.01)
    summary = simulate(cfg, tmp_path)
    assert set(summary["bad_rows"]) == set(BAD_ROW_KINDS)
    clean = simulate_day(cfg, Population(cfg), START)
    lines = (tmp_path / "transactions" / "2026-02-01.csv").read_bytes().split(b"\n")[1:-1]
    assert len(lines) == len(clean) + sum(summary["bad_rows"].values())


def test_bad_line_kinds_are_malformed_as_named():
    row = b"2026020100000001,2026-02-01 10:00:00,7,9,12.50"
    day = START
    assert bad_line("blank_line", day, row, "X") == b""
    assert bad_line("duplicate_id", day, row, "X").startswith(b"2026020100000001,")
    assert bad_line("missing_column", day, row, "X").count(b",") == 3
    with pytest.raises(UnicodeDecodeError):
        bad_line("invalid_utf8", day, row, "X").decode("utf-8")
    assert bad_line("timestamp_outside_day", day, row, "X").split(b",")[1].startswith(b"2026-01-29")
    with pytest.raises(ValueError, match="unknown bad-row kind"):
        bad_line("nope", day, row, "X")


def test_cli_validates_arguments(capsys):
    from jobs.data.simulate import main

    with pytest.raises(SystemExit):
        main(["--start-date", "2026-01-01", "--days", "1", "--drift", "amount_shift"])
    assert "--drift-start" in capsys.readouterr().err
