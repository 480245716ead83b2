"""A small simulated history ingested into bronze, shared by the dbt and feature tests."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

HISTORY_START = date(2025, 3, 1)
HISTORY_DAYS = 6


@pytest.fixture(scope="session")
def history(settings, spark):
    """Six simulated days (2025-03-01..06) ingested into bronze, plus the reference snapshots."""
    from jobs.ingest import ingest
    from jobs.reference import ingest_references
    from jobs.simulate import SimulationConfig, simulate

    cfg = SimulationConfig(start_date=HISTORY_START, days=HISTORY_DAYS, n_customers=80, n_terminals=120, seed=11)
    simulate(cfg, settings.landing_dir)
    days = [HISTORY_START + timedelta(days=i) for i in range(HISTORY_DAYS)]
    for day in days:
        ingest(day, "transactions", settings=settings)
        ingest(day, "fraud_reports", settings=settings)
    ingest_references(days[-1], settings=settings)
    return days
