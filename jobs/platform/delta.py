"""Delta tables without a JVM (delta-rs, the ``deltalake`` package): what ingestion and the ops log use.

Ingestion writes bronze, quarantine and the ops log with delta-rs: a commit costs milliseconds and no
Spark session is needed, so an ingestion task starts in seconds. The tables live where the Spark jobs
expect them (``<lakehouse>/<schema>/<table>``), and :func:`jobs.platform.lakehouse.register_path_tables`
makes them visible in the Spark catalog (dbt's sources, the feature job) the first time a Spark job
runs. Every write is one atomic Delta commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from jobs.config import Settings


@dataclass(frozen=True)
class TableSpec:
    """A table written without Spark: its catalog name, Arrow schema and partition column."""

    name: str  # schema.table, as the Spark catalog names it
    schema: pa.Schema
    partition_by: tuple[str, ...] = ()


def lineage_fields(day_column: str) -> list[pa.Field]:
    """The lineage columns of every ingested row: its file, checksum, day (``day_column``), line, when, run."""
    import pyarrow as pa

    return [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("file_checksum", pa.string(), nullable=False),
        pa.field(day_column, pa.date32(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ]


def path(settings: Settings, name: str) -> Path:
    """Where a table's files and Delta log live: ``<lakehouse>/<schema>/<table>``."""
    schema, table = name.split(".")
    return settings.storage.lakehouse_dir / schema / table


def exists(settings: Settings, name: str) -> bool:
    return (path(settings, name) / "_delta_log").is_dir()


def ensure(settings: Settings, spec: TableSpec) -> None:
    """Create ``spec`` as an empty Delta table (version 0) if it does not exist yet."""
    from deltalake import DeltaTable

    if not exists(settings, spec.name):
        location = path(settings, spec.name)
        location.mkdir(parents=True, exist_ok=True)
        DeltaTable.create(str(location), spec.schema, partition_by=list(spec.partition_by) or None, mode="ignore")


def version(settings: Settings, name: str) -> int | None:
    """Latest Delta version of ``name`` (None if the table does not exist)."""
    from deltalake import DeltaTable

    return DeltaTable(str(path(settings, name))).version() if exists(settings, name) else None


def read(settings: Settings, spec: TableSpec, columns: list[str] | None = None, filters=None) -> pa.Table:
    """The table's rows (``filters`` in DNF, as pyarrow takes them); an empty table if it does not exist."""
    import pyarrow as pa
    from deltalake import DeltaTable

    if not exists(settings, spec.name):
        schema = spec.schema if columns is None else pa.schema([spec.schema.field(c) for c in columns])
        return schema.empty_table()
    return DeltaTable(str(path(settings, spec.name))).to_pyarrow_table(columns=columns, filters=filters)


def append(settings: Settings, spec: TableSpec, data: pa.Table, evolve: bool = False) -> int:
    """Append ``data`` in one commit; return the new version. ``evolve``: add the spec's new (nullable)
    columns to a table created before them."""
    from deltalake import write_deltalake

    ensure(settings, spec)
    mode = {"schema_mode": "merge"} if evolve else {}
    write_deltalake(str(path(settings, spec.name)), data.cast(spec.schema), mode="append", **mode)
    return version(settings, spec.name)


def overwrite_where(settings: Settings, spec: TableSpec, data: pa.Table, predicate: str | None) -> int:
    """Replace the rows matching ``predicate`` (SQL, e.g. ``batch_date IN ('2026-01-01')``; None: every row)
    by ``data`` in one commit."""
    from deltalake import write_deltalake

    ensure(settings, spec)
    write_deltalake(str(path(settings, spec.name)), data.cast(spec.schema), mode="overwrite", predicate=predicate)
    return version(settings, spec.name)


def merge(
    settings: Settings, spec: TableSpec, data: pa.Table, on: list[str], update_when: str | None, delete_when: str | None
) -> int:
    """One MERGE commit: update matched rows (where ``update_when`` holds), insert new ones, delete the
    target rows no source row matches (where ``delete_when`` holds, to scope it to some partitions)."""
    from deltalake import DeltaTable

    ensure(settings, spec)
    table = DeltaTable(str(path(settings, spec.name)))
    condition = " AND ".join(f"t.{c} = s.{c}" for c in on)
    merger = table.merge(data.cast(spec.schema), predicate=condition, source_alias="s", target_alias="t")
    merger = merger.when_matched_update_all(predicate=update_when).when_not_matched_insert_all()
    if delete_when:
        merger = merger.when_not_matched_by_source_delete(predicate=delete_when)
    merger.execute()
    return version(settings, spec.name)


def sql_dates(days) -> str:
    """``'2026-01-01', '2026-01-02'`` for an ``IN (...)`` predicate."""
    return ", ".join(f"'{d.isoformat()}'" for d in sorted(days))
