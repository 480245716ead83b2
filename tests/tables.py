"""The lakehouse in tests without a JVM (delta-rs): rows, content digests, snapshots, and time travel back."""

from __future__ import annotations

import hashlib
import json
from datetime import date

from jobs.platform import delta

INGESTION_TABLES = (
    "bronze.transactions",
    "bronze.fraud_reports",
    "quarantine.transactions",
    "quarantine.fraud_reports",
    "ops.ingestion_log",
)


def rows(settings, table: str, day: date | None = None, **equal) -> list[dict]:
    """Rows of ``table`` (those of batch date ``day``, and with column = value for each keyword)."""
    from deltalake import DeltaTable

    if not delta.exists(settings, table):
        return []
    filters = [("batch_date", "=", day)] if day is not None else []
    filters += [(k, "=", v) for k, v in equal.items()]
    out = DeltaTable(str(delta.path(settings, table))).to_pyarrow_table(filters=filters or None).to_pylist()
    for row in out:  # maps come back as lists of pairs: make them dicts, as Spark shows them
        for k, v in row.items():
            if isinstance(v, list) and v and isinstance(v[0], tuple):
                row[k] = dict(v)
    return out


def digest(settings, table: str, exclude: tuple[str, ...] = ()) -> tuple[int, str] | None:
    """(row count, order-independent hash of the content without the ``exclude`` columns)."""
    if not delta.exists(settings, table):
        return None
    lines = sorted(
        json.dumps({k: v for k, v in r.items() if k not in exclude}, sort_keys=True, default=str)
        for r in rows(settings, table)
    )
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def restore(settings, versions: dict[str, int]) -> None:
    """Put each table back to its version in ``versions`` (Delta time travel through delta-rs: a commit of
    milliseconds, where Spark's ``RESTORE`` costs seconds a table in a cold JVM)."""
    from deltalake import DeltaTable

    for table, version in versions.items():
        DeltaTable(str(delta.path(settings, table))).restore(version)


def snapshot(settings, tables=INGESTION_TABLES, exclude: tuple[str, ...] = ()) -> dict:
    """Version and content digest of each table: what 'nothing changed' means."""
    return {t: (delta.version(settings, t), digest(settings, t, exclude)) for t in tables if delta.exists(settings, t)}
