"""A training frame straight from the simulator, for the training benchmarks (no Spark, no dbt).

The same rows the pipeline would produce for a long simulated history, built in memory: the
simulator's transactions, their fraud reports (``reported_at`` = report day + report second, as in
the landing files; ``report_known_at`` = the end of the report's day, when its file lands), every registry feature from the vectorised reference that ``bench/pipeline.py``
checks equal to the Spark job, and the slice columns of the reference files. A simulated history of
months would take hours through the daily pipeline on two cores; the numbers it gives are the ones
the model would see.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import reference_features_numpy  # noqa: E402

from jobs.data.simulate import Population, SimulationConfig, simulate_day  # noqa: E402
from jobs.features.registry import FEATURE_SET_VERSION  # noqa: E402


def simulated_frame(
    start: date, days: int, customers: int, terminals: int, seed: int, delay_days: int = 7
) -> pd.DataFrame:
    cfg = SimulationConfig(start_date=start, days=days, n_customers=customers, n_terminals=terminals, seed=seed)
    pop = Population(cfg)
    tx = pd.concat([simulate_day(cfg, pop, start + timedelta(days=i)) for i in range(days)], ignore_index=True)
    day0 = tx["tx_datetime"].dt.normalize()
    reported = (
        day0 + pd.to_timedelta(tx["report_delay_days"], unit="D") + pd.to_timedelta(tx["report_seconds"], unit="s")
    )
    tx["reported_at"] = reported.where(tx["tx_fraud"] == 1)
    tx["report_known_at"] = tx["reported_at"].dt.normalize() + pd.Timedelta(days=1)
    tx["transaction_id"] = tx["transaction_id"].astype(str)
    tx["customer_id"] = tx["customer_id"].astype(str)
    tx["terminal_id"] = tx["terminal_id"].astype(str)
    tx["batch_date"] = tx["tx_datetime"].dt.date
    feats = reference_features_numpy(tx, None, delay_days)
    frame = tx[
        ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "reported_at", "report_known_at", "tx_fraud"]
    ].merge(feats, on="transaction_id")
    frame["tx_date"] = frame["tx_datetime"].dt.date
    cust = pop.customers_frame()[["customer_id", "segment", "region"]].astype(str)
    term = pop.terminals_frame()[["terminal_id", "merchant_category"]].astype(str)
    frame = frame.merge(cust, on="customer_id", how="left").merge(term, on="terminal_id", how="left")
    frame["feature_set_version"] = FEATURE_SET_VERSION
    return frame.sort_values(["tx_datetime", "transaction_id"], kind="mergesort").reset_index(drop=True)


def label_as_of(frame: pd.DataFrame) -> datetime:
    return datetime.combine(max(frame["tx_date"]) + timedelta(days=1), datetime.min.time())
