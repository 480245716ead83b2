"""``ops.ingestion_log``: one row per ingestion attempt of a landing or reference file.

Written by :mod:`jobs.data.ingest` and :mod:`jobs.data.reference` (with delta-rs, no JVM): source,
batch date, file and checksum, status (``succeeded``/``failed``) and error, and the counts that must
reconcile, rows read = rows accepted + rows quarantined. The latest attempt of a file decides whether
a re-delivery with the same checksum can be skipped.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from jobs.config import Settings
from jobs.platform import delta

LOG_TABLE = "ops.ingestion_log"
SUCCEEDED, FAILED = "succeeded", "failed"
_TS = pa.timestamp("us", tz="UTC")
SPEC = delta.TableSpec(
    LOG_TABLE,
    pa.schema(
        [
            pa.field("source", pa.string(), nullable=False),
            pa.field("batch_date", pa.date32(), nullable=False),
            pa.field("source_file", pa.string(), nullable=False),
            pa.field("file_checksum", pa.string()),
            pa.field("status", pa.string(), nullable=False),
            pa.field("error", pa.string()),
            pa.field("rows_read", pa.int64()),
            pa.field("rows_accepted", pa.int64()),
            pa.field("rows_quarantined", pa.int64()),
            pa.field("bronze_version", pa.int64()),
            pa.field("quarantine_version", pa.int64()),
            pa.field("validation_summary", pa.string()),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("started_at", _TS, nullable=False),
            pa.field("finished_at", _TS, nullable=False),
        ]
    ),
)


def append(settings: Settings, entries: list[dict]) -> int:
    """Append attempts in one commit (keys = the table's columns; missing keys are null)."""
    rows = {f.name: [e.get(f.name) for e in entries] for f in SPEC.schema}
    return delta.append(settings, SPEC, pa.table(rows, schema=SPEC.schema))


def latest_attempts(settings: Settings, source: str, days: list[date] | None = None) -> dict[date | None, dict]:
    """The latest attempt per batch date for ``source`` (restricted to ``days`` when given)."""
    filters = [("source", "=", source)]
    if days is not None:
        filters.append(("batch_date", "in", list(days)))
    frame = delta.read(settings, SPEC, filters=filters).to_pandas()
    if frame.empty:
        return {}
    frame = frame.sort_values("finished_at").groupby("batch_date", sort=False).tail(1)
    return {row["batch_date"]: row for row in frame.to_dict("records")}


def latest_attempt(settings: Settings, source: str, day: date | None = None) -> dict | None:
    """The latest attempt for ``source`` (and ``batch_date = day`` when given), or None."""
    attempts = latest_attempts(settings, source, None if day is None else [day])
    if day is not None:
        return attempts.get(day)
    return max(attempts.values(), key=lambda a: a["finished_at"], default=None)


def succeeded_with(attempt: dict | None, checksum: str) -> bool:
    """True when ``attempt`` succeeded on a file with this checksum (a re-delivery can be skipped)."""
    return attempt is not None and attempt["status"] == SUCCEEDED and attempt["file_checksum"] == checksum


def reconciliation(settings: Settings) -> dict[str, int]:
    """Totals of the latest successful ingestion of each file: read, accepted, quarantined."""
    frame = delta.read(settings, SPEC, filters=[("status", "=", SUCCEEDED)]).to_pandas()
    if frame.empty:
        return {"files": 0, "rows_read": 0, "rows_accepted": 0, "rows_quarantined": 0}
    latest = frame.sort_values("finished_at").groupby(["source", "batch_date"], sort=False).tail(1)
    return {
        "files": len(latest),
        **{k: int(latest[k].fillna(0).sum()) for k in ("rows_read", "rows_accepted", "rows_quarantined")},
    }
