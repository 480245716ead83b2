"""The audit trail: ``governance.audit_log``, an append-only Delta table of decisions about models.

Every deployment step (smoke test, shadow, each canary phase, the switch, a rollback, automatic or by
a person) and every promotion approved for deployment is one row: when, who or what acted, which
version, the strategy, the decision, the reason and the numbers it was decided on (JSON). The table
is created with ``delta.appendOnly=true``, so Delta itself refuses a delete or an overwrite; it is
written with delta-rs (no JVM). A retried task does not append twice: a step passes a ``key`` (its
run and step) and a row with that key's id is written once.

    python -m jobs.release.registry audit [--version V]     # the rows, newest last
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import pyarrow as pa

from jobs.config import Settings, get_settings
from jobs.platform import delta

log = logging.getLogger(__name__)

TABLE = "governance.audit_log"
SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("action", pa.string(), nullable=False),  # e.g. deploy.smoke_test, deploy.canary, rollback
        pa.field("decision", pa.string(), nullable=False),  # passed, failed, done, rolled_back, ...
        pa.field("actor", pa.string(), nullable=False),  # a person, or the DAG run that acted
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("version", pa.string()),
        pa.field("strategy", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("details", pa.string()),  # JSON: the numbers the decision was taken on
    ]
)
SPEC = delta.TableSpec(TABLE, SCHEMA)


def _ensure(settings: Settings) -> str:
    from deltalake import DeltaTable

    location = delta.path(settings, TABLE)
    if not delta.exists(settings, TABLE):
        location.mkdir(parents=True, exist_ok=True)
        DeltaTable.create(str(location), SCHEMA, mode="ignore", configuration={"delta.appendOnly": "true"})
    return str(location)


def record(
    action: str,
    decision: str,
    actor: str,
    version: str | None = None,
    strategy: str | None = None,
    reason: str | None = None,
    details: dict | None = None,
    key: str | None = None,
    settings: Settings | None = None,
) -> dict:
    """Append one decision; with ``key`` (e.g. ``<dag run>/<step>``) a second call appends nothing."""
    from deltalake import DeltaTable, write_deltalake

    settings = settings or get_settings()
    location = _ensure(settings)
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"audit:{key}")) if key else uuid.uuid4().hex
    if key:
        seen = DeltaTable(location).to_pyarrow_table(columns=["event_id"], filters=[("event_id", "=", event_id)])
        if seen.num_rows:
            log.info("audit: %s %s already recorded (%s)", action, decision, key)
            return {"event_id": event_id, "duplicate": True}
    row = {
        "event_id": event_id,
        "at": datetime.now(UTC),
        "action": action,
        "decision": decision,
        "actor": actor,
        "model_name": settings.mlflow.model_name,
        "version": None if version is None else str(version),
        "strategy": strategy,
        "reason": reason,
        "details": json.dumps(details or {}, sort_keys=True, default=str),
    }
    write_deltalake(location, pa.Table.from_pylist([row], schema=SCHEMA), mode="append")
    log.info("audit: %s v%s %s by %s%s", action, version, decision, actor, f" ({reason})" if reason else "")
    return row


def read(version: str | None = None, limit: int | None = None, settings: Settings | None = None) -> list[dict]:
    """The audit rows (of ``version``), oldest first; the last ``limit`` only if given."""
    settings = settings or get_settings()
    filters = [("version", "=", str(version))] if version else None
    rows = delta.read(settings, SPEC, filters=filters).sort_by("at").to_pylist()
    rows = rows[-limit:] if limit else rows
    for r in rows:
        r["at"] = r["at"].isoformat(timespec="seconds")
        r["details"] = json.loads(r["details"]) if r["details"] else {}
    return rows
