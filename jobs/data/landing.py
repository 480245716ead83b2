"""The landing zone: which sources deliver a file per day, and whether a day's files are there.

Kept free of pandas and Great Expectations so the DAG's sensor, which pokes it in a fresh process
every few minutes, starts in a fraction of a second.
"""

from __future__ import annotations

import logging
from datetime import date

from jobs.config import Settings, get_settings

log = logging.getLogger(__name__)

# Sources with one landing file per day (``jobs.data.ingest.SOURCES`` describes how each is validated).
LANDING_SOURCES = ("transactions", "fraud_reports")


def landing_files_ready(
    day: date, sources: tuple[str, ...] = LANDING_SOURCES, settings: Settings | None = None
) -> bool:
    """True once every source's landing file for ``day`` exists (what the DAG's sensor pokes)."""
    settings = settings or get_settings()
    missing = [s for s in sources if settings.storage.landing_file(s, day) is None]
    if missing:
        log.info("waiting for %s landing file(s) of %s under %s", ", ".join(missing), day, settings.storage.landing_dir)
    return not missing
