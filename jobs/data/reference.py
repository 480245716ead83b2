"""Optional reference files: ``landing/customers.csv`` and ``landing/terminals.csv`` -> bronze snapshots.

The landing contract makes them optional: when a file is absent the step is a no-op, and the dbt
dimensions fall back to what the transactions say (first and last seen). When present, the file is
a full snapshot: every accepted row replaces the previous snapshot in one Delta commit
(``bronze.customers`` / ``bronze.terminals``), rows without an id or with a repeated id are
quarantined in ``quarantine.reference`` with a reason, and ``ops.ingestion_log`` records
read = accepted + quarantined. A snapshot whose checksum was already ingested is skipped.

Columns stay strings in bronze (typing is staging's job in dbt); a column the contract knows but the
file lacks is null, and extra columns are kept in ``extra_fields``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd
import pyarrow as pa

from jobs.config import Settings, get_settings
from jobs.platform import delta, opslog
from jobs.platform.logs import setup_logging

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceSpec:
    name: str
    key: str
    columns: tuple[str, ...]  # besides the key

    @property
    def table(self) -> str:
        return f"bronze.{self.name}"


REFERENCES = {
    "customers": ReferenceSpec("customers", "customer_id", ("x_location", "y_location", "region", "segment")),
    "terminals": ReferenceSpec(
        "terminals", "terminal_id", ("x_location", "y_location", "region", "merchant_category", "first_active_date")
    ),
}

QUARANTINE_TABLE = "quarantine.reference"
_MAP = pa.map_(pa.string(), pa.string())
_LINEAGE = delta.lineage_fields("snapshot_date")
QUARANTINE = delta.TableSpec(
    QUARANTINE_TABLE,
    pa.schema(
        [
            pa.field("reference", pa.string(), nullable=False),
            pa.field("raw_values", _MAP),
            pa.field("reasons", pa.list_(pa.string()), nullable=False),
            *_LINEAGE,
        ]
    ),
    ("reference",),
)


def bronze_spec(spec: ReferenceSpec) -> delta.TableSpec:
    """Strings in bronze (typing is staging's job in dbt), extra columns in ``extra_fields``, lineage."""
    fields = [pa.field(spec.key, pa.string(), nullable=False), *(pa.field(c, pa.string()) for c in spec.columns)]
    return delta.TableSpec(spec.table, pa.schema([*fields, pa.field("extra_fields", _MAP), *_LINEAGE]))


def split_reference(frame: pd.DataFrame, spec: ReferenceSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accepted rows and quarantined rows (with ``reasons``) of a reference snapshot."""
    keys = frame[spec.key].fillna("").str.strip()
    reasons = pd.Series([[] for _ in range(len(frame))], index=frame.index, dtype=object)
    missing = keys == ""
    duplicate = keys.duplicated(keep="first") & ~missing
    for mask, reason in ((missing, f"{spec.key} is missing"), (duplicate, f"duplicate {spec.key} in file")):
        for i in frame.index[mask]:
            reasons.at[i] = [*reasons.at[i], reason]
    bad = reasons.map(bool)
    good = frame.loc[~bad].copy()
    good[spec.key] = keys[~bad]
    quarantined = frame.loc[bad].copy()
    quarantined["reasons"] = reasons[bad]
    return good, quarantined


def ingest_reference(name: str, day: date, settings: Settings | None = None, run_id: str | None = None) -> dict:
    """Replace ``bronze.<name>`` with the landing snapshot if it is new; return a summary dict."""
    settings = settings or get_settings()
    spec = REFERENCES[name]
    path = settings.storage.landing_dir / f"{name}.csv"
    run_id = run_id or f"manual__{uuid.uuid4().hex[:12]}"

    # The tables exist (maybe empty) even without a file, so dbt's sources always resolve.
    delta.ensure(settings, bronze_spec(spec))
    delta.ensure(settings, QUARANTINE)
    if not path.exists():
        log.info("no %s reference file at %s: nothing to do (reference files are optional)", name, path)
        return {"reference": name, "status": "absent", "rows_read": 0, "rows_accepted": 0, "rows_quarantined": 0}
    raw = path.read_bytes()
    checksum = hashlib.sha256(raw).hexdigest()
    last = opslog.latest_attempt(settings, name)
    if opslog.succeeded_with(last, checksum):
        log.info("%s snapshot %s already ingested: skipped", name, checksum[:12])
        return {
            "reference": name,
            "status": "skipped",
            "rows_read": int(last["rows_read"]),
            "rows_accepted": int(last["rows_accepted"]),
            "rows_quarantined": int(last["rows_quarantined"]),
        }

    started = datetime.now(UTC)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False).replace({"": None})
    if spec.key not in frame.columns:
        raise ValueError(f"{path}: header lacks the key column {spec.key!r} (got {list(frame.columns)})")
    frame["line_number"] = range(2, len(frame) + 2)
    good, bad = split_reference(frame, spec)
    extra = [c for c in frame.columns if c not in (spec.key, *spec.columns, "line_number")]

    def lineage(n: int) -> dict:
        return {
            "source_file": [str(path)] * n,
            "file_checksum": [checksum] * n,
            "snapshot_date": [day] * n,
            "ingested_at": [started] * n,
            "run_id": [run_id] * n,
        }

    bronze = bronze_spec(spec)
    rows = {
        spec.key: good[spec.key].tolist(),
        **{c: (good[c].tolist() if c in good else [None] * len(good)) for c in spec.columns},
        "extra_fields": [[(c, r[c]) for c in extra if r.get(c) is not None] or None for r in good.to_dict("records")],
        "line_number": good["line_number"].astype(int).tolist(),
        **lineage(len(good)),
    }
    # A full snapshot: one commit replaces the previous one.
    delta.overwrite_where(settings, bronze, pa.table(rows, schema=bronze.schema), None)
    quarantined_rows = {
        "reference": [name] * len(bad),
        "raw_values": [
            [(k, v) for k, v in r.items() if k not in ("reasons", "line_number") and v is not None]
            for r in bad.to_dict("records")
        ],
        "reasons": [list(r) for r in bad["reasons"]],
        "line_number": bad["line_number"].astype(int).tolist(),
        **lineage(len(bad)),
    }
    delta.overwrite_where(
        settings, QUARANTINE, pa.table(quarantined_rows, schema=QUARANTINE.schema), f"reference = '{name}'"
    )
    read, accepted, quarantined = len(frame), len(good), len(bad)
    assert read == accepted + quarantined, "reference rows do not reconcile"
    opslog.append(
        settings,
        [
            {
                "source": name,
                "batch_date": day,
                "source_file": str(path),
                "file_checksum": checksum,
                "status": opslog.SUCCEEDED,
                "rows_read": read,
                "rows_accepted": accepted,
                "rows_quarantined": quarantined,
                "run_id": run_id,
                "started_at": started,
                "finished_at": datetime.now(UTC),
            }
        ],
    )
    summary = {
        "reference": name,
        "status": "succeeded",
        "rows_read": read,
        "rows_accepted": accepted,
        "rows_quarantined": quarantined,
    }
    log.info("reference snapshot: %s", summary)
    return summary


def ingest_references(day: date | str, run_id: str | None = None, settings: Settings | None = None) -> dict:
    """Ingest every reference snapshot that is present (Airflow entry point)."""
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return {name: ingest_reference(name, day, settings=settings, run_id=run_id) for name in REFERENCES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.data.reference", description="Ingest the reference snapshots."
    )
    parser.add_argument("--date", type=date.fromisoformat, default=date.today(), help="snapshot date (default today)")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(ingest_references(args.date), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
