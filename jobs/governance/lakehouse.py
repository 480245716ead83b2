"""Delta maintenance that never breaks a registered model's lineage: OPTIMIZE, then VACUUM, then a check.

Every registered model version records the Delta versions its training set was read at
(``delta_version.<table>`` tags); ``reproduce`` time-travels to them. VACUUM deletes the files that
no version newer than its retention horizon needs, so a plain weekly VACUUM would, after a week, make
every older model irreproducible. Here, per table:

1. :func:`protected_versions`: the oldest version any registered, **non-archived** model version pins
   (``python -m jobs.release.registry archive --version V`` releases a version's pins), or a training
   of the last two days (one in progress has pinned its data but not registered its version yet);
2. :func:`retention_hours`: the configured retention (``PIPELINE_VACUUM_RETENTION_HOURS``), or, if that
   is shorter, the age of that oldest pinned commit plus a safety margin. A file some later commit
   removed is kept; every version from the pinned one on stays whole;
3. OPTIMIZE (bin-packing of small files, ``PIPELINE_OPTIMIZE``), then VACUUM with that retention
   (whole hours, rounded up), through Spark, the engine that wrote most tables. Delta 4 ignores
   ``RETAIN n HOURS`` unless n is 0: the retention is set as the table's
   ``delta.deletedFileRetentionDuration`` (a metadata commit when it changes), which VACUUM then
   uses. ``LITE`` by default (expired removals read from the log), ``FULL`` with
   ``PIPELINE_VACUUM_FULL``; a table that fails does not stop the others;
4. :func:`unreadable_pins`: every pinned version's files must still be on disk, else the run fails.

The Delta log of a pinned version must outlive it too: a table whose oldest pin is older than its
``delta.logRetentionDuration`` allows gets that property raised. ``python -m jobs.governance.lakehouse``
runs it all without Airflow (``--dry-run`` only plans).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from jobs.config import Settings, get_settings
from jobs.platform import delta
from jobs.platform.tracking import Tag, experiment_id, mlflow_client
from jobs.release import audit

log = logging.getLogger(__name__)

DEFAULT_LOG_RETENTION_DAYS = 30  # Delta's default delta.logRetentionDuration
LOG_RETENTION = "delta.logRetentionDuration"
TOMBSTONE_RETENTION = "delta.deletedFileRetentionDuration"  # VACUUM's horizon in Delta 4 (RETAIN is ignored)
RECENT_TRAINING_DAYS = 2  # trainings younger than this keep their pins, registered or not (one in progress)


@dataclass
class TablePlan:
    """What maintenance does to one table: its oldest pinned version (if any) and the VACUUM retention."""

    table: str
    latest: int
    pinned: dict[int, list[str]] = field(default_factory=dict)  # Delta version -> model versions that pin it
    oldest_pinned_at_ms: int | None = None
    retention_hours: float = 0.0


def delta_tables(settings: Settings) -> list[str]:
    """Every Delta table of the lakehouse (``<schema>.<table>`` with a ``_delta_log``)."""
    root = settings.storage.lakehouse_dir
    if not root.is_dir():
        return []
    return sorted(
        f"{schema.name}.{table.name}"
        for schema in root.iterdir()
        if schema.is_dir()
        for table in schema.iterdir()
        if (table / "_delta_log").is_dir()
    )


def pins_of(model_versions: Iterable) -> dict[str, dict[int, list[str]]]:
    """Table -> pinned Delta version -> model versions, over the versions not archived (``archived=true``)."""
    pins: dict[str, dict[int, list[str]]] = {}
    for mv in model_versions:
        tags = dict(mv.tags or {})
        if tags.get(Tag.ARCHIVED) == "true":
            continue
        for key, value in tags.items():
            if key.startswith(Tag.DELTA_VERSION_PREFIX):
                table = key.removeprefix(Tag.DELTA_VERSION_PREFIX)
                pins.setdefault(table, {}).setdefault(int(value), []).append(str(mv.version))
    return pins


def protected_versions(settings: Settings) -> dict[str, dict[int, list[str]]]:
    """The Delta versions registered, non-archived versions of the model pin (read from the registry),
    and those of trainings started in the last :data:`RECENT_TRAINING_DAYS` (a training in progress has
    pinned its data but registers its version only at the end)."""
    from types import SimpleNamespace

    client = mlflow_client(settings)
    versions = client.search_model_versions(f"name = '{settings.mlflow.model_name}'")
    since = int((time.time() - RECENT_TRAINING_DAYS * 86_400) * 1000)
    runs = client.search_runs(
        [experiment_id(settings)], f"attributes.start_time > {since} AND tags.{Tag.TRAINING_KEY} != ''"
    )
    recent = [SimpleNamespace(version=f"run {r.info.run_id[:8]}", tags=r.data.tags) for r in runs]
    return pins_of([*versions, *recent])


def commit_time_ms(settings: Settings, table: str, version: int) -> int:
    """When ``version`` of ``table`` was committed (its commitInfo timestamp, or the log file's mtime if earlier)."""
    entry = delta.path(settings, table) / "_delta_log" / f"{version:020d}.json"
    mtime = int(entry.stat().st_mtime * 1000)
    with entry.open() as lines:
        for line in lines:
            info = json.loads(line).get("commitInfo")
            if info and info.get("timestamp"):
                return min(int(info["timestamp"]), mtime)
    return mtime


def retention_hours(configured: float, oldest_pinned_at_ms: int | None, margin_s: float, now_ms: int) -> float:
    """VACUUM's retention in whole hours: the configured one, or longer so the oldest pinned commit is inside the horizon.

    VACUUM deletes a removed file when it was removed before ``now - retention``. Every file a version
    ``v`` needs was removed (if at all) by a later commit, so after ``v`` was committed: a horizon at or
    before ``v``'s commit keeps ``v`` and every later version whole.
    """
    needed = 0.0 if oldest_pinned_at_ms is None else (now_ms - oldest_pinned_at_ms) / 3_600_000 + margin_s / 3600
    return float(math.ceil(max(configured, needed)))  # Delta rounds the retention to whole hours: round up


def plan(settings: Settings, tables: list[str] | None = None) -> list[TablePlan]:
    """The retention of every table, from the registry's pins (no Spark)."""
    pins = protected_versions(settings)
    now_ms = int(time.time() * 1000)
    m = settings.maintenance
    plans = []
    for table in tables or delta_tables(settings):
        latest = delta.version(settings, table)
        if latest is None:
            continue
        p = TablePlan(table, latest, pins.get(table, {}))
        if p.pinned:
            p.oldest_pinned_at_ms = commit_time_ms(settings, table, min(p.pinned))
        p.retention_hours = retention_hours(
            m.vacuum_retention_hours, p.oldest_pinned_at_ms, m.vacuum_safety_margin_s, now_ms
        )
        plans.append(p)
    return plans


def _data_files(location: Path) -> tuple[int, int]:
    files = [f for f in location.rglob("*.parquet") if "_delta_log" not in f.parts]
    return len(files), sum(f.stat().st_size for f in files)


def _log_retention_days(location: Path) -> float:
    value = _property(location, LOG_RETENTION)
    if not value:
        return DEFAULT_LOG_RETENTION_DAYS
    amount, unit = value.removeprefix("interval").split()[:2]
    return float(amount) * {"day": 1, "days": 1, "hour": 1 / 24, "hours": 1 / 24, "week": 7, "weeks": 7}.get(unit, 1)


def vacuum_mode(full: bool) -> str:
    """``LITE`` (the expired removals are read from the Delta log), or ``FULL`` when asked for.

    FULL also lists every directory and deletes the files no commit references (orphans of failed
    writes). It is safe at any retention because the table's ``delta.deletedFileRetentionDuration`` is
    set to that retention first, which keeps the removed files' tombstones in the state as long.
    """
    return "FULL" if full else "LITE"


def _property(location: Path, name: str) -> str | None:
    from deltalake import DeltaTable

    return DeltaTable(str(location)).metadata().configuration.get(name)


def _set_property(spark, location: Path, name: str, value: str) -> None:
    """Set a Delta table property (one metadata commit), only if it differs."""
    if _property(location, name) != value:
        spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ('{name}' = '{value}')")


def maintain_table(spark, settings: Settings, p: TablePlan) -> dict:
    """OPTIMIZE and VACUUM one table with its planned retention; files and bytes before and after."""
    from delta.tables import DeltaTable

    location = delta.path(settings, p.table)
    files_before, bytes_before = _data_files(location)
    if p.oldest_pinned_at_ms is not None:  # first, so no later commit's log cleanup drops the pinned commit
        age_days = (time.time() * 1000 - p.oldest_pinned_at_ms) / 86_400_000
        if _log_retention_days(location) < age_days + DEFAULT_LOG_RETENTION_DAYS:
            days = math.ceil(age_days) + DEFAULT_LOG_RETENTION_DAYS
            _set_property(spark, location, LOG_RETENTION, f"interval {days} days")
    compacted = {}
    if settings.maintenance.optimize:
        row = DeltaTable.forPath(spark, str(location)).optimize().executeCompaction().collect()[0]["metrics"]
        compacted = {"files_removed": int(row["numFilesRemoved"]), "files_added": int(row["numFilesAdded"])}
    # The horizon is "now - retention" when VACUUM starts: the retention is recomputed here, not at plan
    # time, or the minutes other tables took would move the horizon past the pinned commit.
    m = settings.maintenance
    now_ms = int(time.time() * 1000)
    p.retention_hours = retention_hours(
        m.vacuum_retention_hours, p.oldest_pinned_at_ms, m.vacuum_safety_margin_s, now_ms
    )
    mode = vacuum_mode(m.vacuum_full)
    if p.retention_hours == 0:  # the one RETAIN value Delta 4 honours; it needs its safety check off
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        retain = " RETAIN 0 HOURS"
    else:
        # Delta 4 ignores any other RETAIN ("Vacuum with retention threshold other than 0 hours is
        # ignored"): the horizon is the table's delta.deletedFileRetentionDuration, which also keeps the
        # removed files' tombstones in the table state that long (FULL relies on them).
        _set_property(spark, location, TOMBSTONE_RETENTION, f"interval {int(p.retention_hours)} hours")
        retain = ""
    try:
        spark.sql(f"VACUUM delta.`{location}` {mode}{retain}").collect()
    except Exception as exc:  # noqa: BLE001 (py4j/Spark errors)
        # LITE needs the log since the last VACUUM (or since version 0): an old table whose first commits
        # were cleaned up refuses it: FULL then (safe, see vacuum_mode), slower.
        if mode != "LITE" or "LITE" not in str(exc):
            raise
        log.warning("%s: VACUUM LITE refused (%s); VACUUM FULL instead", p.table, str(exc).splitlines()[0])
        mode = "FULL"
        spark.sql(f"VACUUM delta.`{location}` FULL{retain}").collect()
    files_after, bytes_after = _data_files(location)
    return {
        "table": p.table,
        "pinned": {str(v): models for v, models in sorted(p.pinned.items())},
        "retention_hours": p.retention_hours,
        "vacuum": mode,
        "optimize": compacted,
        "files_before": files_before,
        "files_after": files_after,
        "bytes_freed": bytes_before - bytes_after,
    }


def unreadable_pins(settings: Settings, plans: list[TablePlan]) -> list[str]:
    """Pinned versions with a data file missing on disk (what VACUUM must never cause)."""
    from deltalake import DeltaTable

    broken = []
    for p in plans:
        location = delta.path(settings, p.table)
        for version, models in sorted(p.pinned.items()):
            try:
                files = DeltaTable(str(location), version=version).file_uris()
            except Exception as exc:  # noqa: BLE001 (delta-rs: the version's log is gone)
                broken.append(f"{p.table}@{version} (model versions {models}): {exc}")
                continue
            missing = [f for f in files if not Path(f.removeprefix("file://")).exists()]
            if missing:
                broken.append(f"{p.table}@{version} (model versions {models}): {len(missing)} files missing")
    return broken


def maintain(settings: Settings | None = None, tables: list[str] | None = None, spark=None) -> dict:
    """Plan, OPTIMIZE and VACUUM every table (or ``tables``), then check that every pinned version is whole.

    A table that fails is reported and the others still run; the pinned versions of every table are
    checked whatever happened; the run then fails if anything failed or any pin broke.
    """
    from jobs.platform.spark import get_spark

    settings = settings or get_settings()
    plans = plan(settings, tables)
    spark = spark or get_spark(settings)
    configured = settings.maintenance.vacuum_retention_hours
    results, failed = [], []
    for p in plans:
        t0 = time.time()
        try:
            result = maintain_table(spark, settings, p)
        except Exception as exc:  # noqa: BLE001 (one table's failure must not leave the others unmaintained)
            log.exception("maintenance of %s failed", p.table)
            failed.append(f"{p.table}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        result["seconds"] = round(time.time() - t0, 2)
        log.info("maintained %s: %s", p.table, json.dumps(result))
        results.append(result)
    broken = unreadable_pins(settings, plans)
    out = {
        "tables": results,
        "failed": failed,
        "pinned_versions": sum(len(p.pinned) for p in plans),
        "broken_pins": broken,
    }
    audit.record(
        "maintain_lakehouse",
        "failed" if failed or broken else "done",
        "maintain_lakehouse",
        reason=f"{len(results)} of {len(plans)} tables, retention {configured} h where nothing is pinned",
        details={
            "bytes_freed": sum(r["bytes_freed"] for r in results),
            "pinned": {r["table"]: r["pinned"] for r in results if r["pinned"]},
            "failed": failed,
            "broken_pins": broken,
        },
        settings=settings,
    )
    if broken:
        raise RuntimeError("Delta maintenance broke pinned versions: " + "; ".join(broken))
    if failed:
        raise RuntimeError("Delta maintenance failed on: " + "; ".join(failed))
    return out


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m jobs.governance.lakehouse",
        description="OPTIMIZE and VACUUM the lakehouse, keeping every Delta version a registered model pins.",
    )
    parser.add_argument("--table", action="append", help="only this table (repeatable); default: all")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (pins, retention), change nothing")
    args = parser.parse_args(argv)
    setup_logging()
    settings = get_settings()
    if args.dry_run:
        out = [p.__dict__ for p in plan(settings, args.table)]
    else:
        out = maintain(settings, args.table)
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
