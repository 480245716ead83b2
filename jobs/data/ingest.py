"""Validated, idempotent ingestion of one landing file into bronze Delta tables.

For ``landing/<source>/<date>.csv`` (or ``.jsonl``):

1. read the raw bytes (SHA-256 checksum), split physical lines; structurally broken lines (blank,
   invalid UTF-8, broken quoting, wrong field count, invalid JSON) are rejected with that reason;
2. validate the parsed rows with the source's Great Expectations suite
   (``jobs/data/suites/<source>.json``): schema, not-null, types, amount range, timestamp
   inside the batch day, ids unique in the batch and against other batches already ingested;
3. MERGE valid rows into ``bronze.<source>`` keyed on the id, with lineage columns;
4. replace the day's rows of ``quarantine.<source>`` with every invalid row (raw values as
   strings, the rule or rules it broke);
5. append a row to ``ops.ingestion_log``; assert read = accepted + quarantined.

A file already ingested with the same checksum is skipped (no table changes); a retried or
re-delivered file converges to the same tables. ``python -m jobs.data.ingest --date YYYY-MM-DD``
prints a one-line JSON summary as its last line.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import re
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.config import Settings, get_settings
from jobs.data.expectations import ROW_INDEX, required_columns, validate_rows
from jobs.platform import opslog
from jobs.platform.logs import setup_logging

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
# Names the pipeline uses itself (lineage, quarantine and internal columns): not allowed in a file.
RESERVED_COLUMNS = frozenset(
    {
        "_line",
        "_row",
        "_parsed",
        "raw_line",
        "raw_values",
        "reasons",
        "extra_fields",
        "source_file",
        "file_checksum",
        "batch_date",
        "line_number",
        "ingested_at",
        "run_id",
    }
)
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class SourceSpec:
    """What ingestion needs to know about one landing source."""

    name: str
    key: str
    timestamp: str
    amount: str | None = None

    @property
    def bronze_table(self) -> str:
        return f"bronze.{self.name}"

    @property
    def quarantine_table(self) -> str:
        return f"quarantine.{self.name}"

    @property
    def required(self) -> list[str]:
        return required_columns(self.name)


SOURCES: dict[str, SourceSpec] = {
    "transactions": SourceSpec("transactions", key="transaction_id", timestamp="tx_datetime", amount="tx_amount"),
    "fraud_reports": SourceSpec("fraud_reports", key="transaction_id", timestamp="reported_at"),
}


class IngestionError(RuntimeError):
    """The landing file could not be ingested; the reason is in the message and the ingestion log."""


@dataclass
class IngestionResult:
    source: str
    batch_date: str
    source_file: str
    file_checksum: str
    status: str
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    bronze_version: int | None
    quarantine_version: int | None
    run_id: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


@dataclass
class ParsedFile:
    """The lines of one file: parsed records (string columns) and structural rejects."""

    header: list[str]
    records: pd.DataFrame  # one column per header field plus ``_line`` (1-based line number)
    raw_lines: dict[int, str]  # line number -> raw text, kept only for rejected lines later
    rejects: list[tuple[int, str, str]]  # (line number, raw text, reason)
    rows_read: int
    needs_strip: bool = True  # False when no field can have surrounding whitespace (skips a costly pass)


# ---------------------------------------------------------------------------------------------
# 1. reading


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="surrogateescape")  # bad bytes become lone surrogates


def _printable(line: str) -> str:
    """A raw line as storable text: undecodable bytes shown as \\xNN."""
    return line.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")


def parse_file(path: Path, raw: bytes | None = None) -> ParsedFile:
    """Split ``path`` (or its already-read bytes) into records and structural rejects.

    Every physical line after the header is a row read.
    """
    raw = path.read_bytes() if raw is None else raw
    text = _decode(raw)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last row; it does not start a new one
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if path.suffix in (".jsonl", ".json"):
        return _parse_jsonl(lines)
    if not lines:
        return ParsedFile([], pd.DataFrame({"_line": np.array([], dtype=np.int64)}), {}, [], 0)
    if _SURROGATE.search(lines[0]):
        raise IngestionError(f"{path}: header is not valid UTF-8")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    width = len(header)
    rows: list[list[str]] = []
    numbers: list[int] = []
    rejects: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        if len(fields) == width and '"' not in line and not _SURROGATE.search(line):
            rows.append(fields)
            numbers.append(number)
            continue
        if not line.strip():
            rejects.append((number, line, "blank_line"))
        elif _SURROGATE.search(line):
            rejects.append((number, _printable(line), "invalid_utf8"))
        else:
            if '"' in line:
                try:
                    fields = next(csv.reader([line], strict=True))
                except csv.Error:
                    rejects.append((number, line, "broken_quoting"))
                    continue
            if len(fields) != width:
                rejects.append((number, line, "wrong_field_count"))
            else:
                rows.append(fields)
                numbers.append(number)
    # One regex pass over the whole text tells whether any field has surrounding blanks.
    needs_strip = re.search(r"(?m)(?:^|,)[ \t]|[ \t](?:,|\r?$)", text) is not None
    columns = list(zip(*rows, strict=True)) if rows else [()] * width
    records = pd.DataFrame({name: pd.array(col, dtype=object) for name, col in zip(header, columns, strict=True)})
    records["_line"] = np.asarray(numbers, dtype=np.int64)
    raw_lines = {n: lines[n - 1] for n in numbers}
    return ParsedFile(header, records, raw_lines, rejects, len(lines) - 1, needs_strip)


def _parse_jsonl(lines: list[str]) -> ParsedFile:
    records: list[dict] = []
    numbers: list[int] = []
    rejects: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            rejects.append((number, line, "blank_line"))
            continue
        if _SURROGATE.search(line):
            rejects.append((number, _printable(line), "invalid_utf8"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            rejects.append((number, line, "invalid_json"))
            continue
        if not isinstance(obj, dict):
            rejects.append((number, line, "invalid_json"))
            continue
        records.append({k: (None if v is None else str(v)) for k, v in obj.items()})
        numbers.append(number)
    header = list(dict.fromkeys(k for r in records for k in r))
    frame = (
        pd.DataFrame.from_records(records, columns=header).astype(object)
        if records
        else pd.DataFrame(columns=header, dtype=object)
    )
    frame = frame.where(frame.notna(), None)
    frame["_line"] = np.asarray(numbers, dtype=np.int64)
    return ParsedFile(header, frame, {n: lines[n - 1] for n in numbers}, rejects, len(lines))


# ---------------------------------------------------------------------------------------------
# 2. validation


def _clean(col: pd.Series, strip: bool = True) -> pd.Series:
    """Strip whitespace (when any field may have it); empty strings become nulls."""
    values = col.astype(object).str.strip() if strip else col.astype(object)
    return values.where(values.notna() & (values != ""), None).astype(object)


def _parse_timestamps(col: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(col, format=TIMESTAMP_FORMAT, errors="coerce")
    retry = parsed.isna() & col.notna()
    if retry.any():  # ISO 8601 variants (T separator, fractions, offsets converted to UTC)
        iso = pd.to_datetime(col[retry], format="ISO8601", errors="coerce", utc=True)
        parsed.loc[retry] = iso.dt.tz_convert(None)
    return parsed


def prepare_for_validation(parsed: ParsedFile, spec: SourceSpec, known_elsewhere: set[str]) -> pd.DataFrame:
    """Typed and derived columns the suite's rules read (``*_value``, ``*_parsable``, ``*_unique_*``)."""
    frame = parsed.records.copy()
    frame[ROW_INDEX] = np.arange(len(frame), dtype=np.int64)
    for column in parsed.header:
        frame[column] = _clean(frame[column], parsed.needs_strip)
    ts = frame[spec.timestamp]
    frame[f"{spec.timestamp}_value"] = _parse_timestamps(ts)
    frame[f"{spec.timestamp}_parsable"] = ts.isna() | frame[f"{spec.timestamp}_value"].notna()
    if spec.amount:
        numeric = pd.to_numeric(frame[spec.amount].where(frame[spec.amount].notna(), np.nan), errors="coerce")
        frame[f"{spec.amount}_value"] = numeric.where(np.isfinite(numeric), np.nan)
    key = frame[spec.key]
    frame[f"{spec.key}_unique_in_batch"] = key.isna() | ~key.duplicated(keep="first")
    frame[f"{spec.key}_unique_across_batches"] = ~key.isin(known_elsewhere) if known_elsewhere else True
    return frame


def _staged(spark, frame: pd.DataFrame, staging_dir: Path, name: str, timestamps: tuple[str, ...] = ()):
    """A Spark DataFrame over ``frame``, via a Parquet file written with Arrow.

    Much faster than ``createDataFrame`` for large frames, and the JVM can re-read it (a MERGE
    scans its source more than once) without going back to Python.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    staging_dir.mkdir(parents=True, exist_ok=True)
    path = staging_dir / f"{name}.parquet"
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), path, coerce_timestamps="us", allow_truncated_timestamps=True
    )
    sdf = spark.read.parquet(str(path))
    for column in timestamps:  # naive timestamps read back as TIMESTAMP_NTZ; the tables use TIMESTAMP (UTC session)
        sdf = sdf.withColumn(column, F.col(column).cast("timestamp"))
    return sdf


def _known_elsewhere(spark, spec: SourceSpec, ids: pd.Series, day: date, staging_dir: Path) -> set[str]:
    """Ids of this batch that bronze already holds from another batch date."""
    if not spark.catalog.tableExists(spec.bronze_table) or ids.empty:
        return set()
    from pyspark.sql import functions as F

    batch_ids = _staged(spark, pd.DataFrame({"id": ids.dropna().astype(str).unique()}), staging_dir, "batch_ids")
    other = spark.table(spec.bronze_table).where(F.col("batch_date") != F.lit(day)).select(F.col(spec.key).alias("id"))
    return {r["id"] for r in other.join(batch_ids, "id", "left_semi").distinct().collect()}


# ---------------------------------------------------------------------------------------------
# 3-5. writing


def _lineage(frame, path: Path, checksum: str, day: date, ingested_at: datetime, run_id: str):
    from pyspark.sql import functions as F

    return (
        frame.withColumn("source_file", F.lit(str(path)))
        .withColumn("file_checksum", F.lit(checksum))
        .withColumn("batch_date", F.lit(day))
        .withColumn("ingested_at", F.lit(ingested_at).cast("timestamp"))
        .withColumn("run_id", F.lit(run_id))
    )


def _string_map(columns: list[str]):
    """A MAP<STRING,STRING> of the given string columns (null when there are none)."""
    from pyspark.sql import functions as F

    if not columns:
        return F.lit(None).cast("map<string,string>")
    return F.map_from_arrays(F.array(*[F.lit(c) for c in columns]), F.array(*[F.col(f"`{c}`") for c in columns]))


def _write_bronze(
    spark, spec: SourceSpec, valid: pd.DataFrame, header: list[str], day: date, lineage, staging_dir: Path
) -> int:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from jobs.platform.lakehouse import ensure_table, table_version

    ensure_table(spark, spec.bronze_table)
    if valid.empty:  # the day's partition holds exactly this file's valid rows: none
        spark.sql(f"DELETE FROM {spec.bronze_table} WHERE batch_date = DATE'{day.isoformat()}'")
        return table_version(spark, spec.bronze_table)
    extras = [c for c in header if c not in spec.required]
    typed = pd.DataFrame({c: valid[c].to_numpy(dtype=object) for c in spec.required + extras})
    typed[spec.timestamp] = valid[f"{spec.timestamp}_value"].to_numpy()
    if spec.amount:
        typed[spec.amount] = valid[f"{spec.amount}_value"].astype(float).to_numpy()
    typed["line_number"] = valid["_line"].astype(np.int32).to_numpy()
    sdf = _staged(spark, typed, staging_dir, "valid", timestamps=(spec.timestamp,))
    sdf = lineage(sdf.withColumn("extra_fields", _string_map(extras)))
    target = spark.table(spec.bronze_table)
    sdf = sdf.select(*target.columns)
    if target.where(F.col("batch_date") == F.lit(day)).limit(1).count() == 0:
        # First load of this day: nothing can match, so the MERGE reduces to an insert. Appending
        # gives the same table and skips the join against the target.
        sdf.write.format("delta").mode("append").saveAsTable(spec.bronze_table)
        return table_version(spark, spec.bronze_table)
    # Validation has already quarantined ids that exist in another batch, so the merge only needs
    # to look at this batch's partition.
    log.info("bronze partition %s already has rows: merging on %s", day, spec.key)
    (
        DeltaTable.forName(spark, spec.bronze_table)
        .alias("t")
        .merge(sdf.alias("s"), f"t.batch_date = s.batch_date AND t.{spec.key} = s.{spec.key}")
        .whenMatchedUpdateAll(condition="t.file_checksum <> s.file_checksum")
        .whenNotMatchedInsertAll()
        .whenNotMatchedBySourceDelete(condition=f"t.batch_date = DATE'{day.isoformat()}'")
        .execute()
    )
    return table_version(spark, spec.bronze_table)


def _write_quarantine(spark, spec: SourceSpec, rows: list[dict], header: list[str], day: date, lineage) -> int:
    from pyspark.sql import functions as F

    from jobs.platform.lakehouse import ensure_table, replace_where, table_version

    ensure_table(spark, spec.quarantine_table)
    schema = ", ".join(
        ["raw_line string", "reasons array<string>", "line_number int", "_parsed boolean"]
        + [f"`{c}` string" for c in header]
    )
    sdf = spark.createDataFrame(rows, schema)
    sdf = sdf.withColumn("raw_values", F.when(F.col("_parsed"), _string_map(header)))
    sdf = lineage(sdf).select(*spark.table(spec.quarantine_table).columns)
    # One atomic commit replaces the day's quarantine rows.
    replace_where(spark, sdf, spec.quarantine_table, f"batch_date = '{day.isoformat()}'")
    return table_version(spark, spec.quarantine_table)


# ---------------------------------------------------------------------------------------------
# the job


def ingest(
    day: date,
    source: str = "transactions",
    settings: Settings | None = None,
    run_id: str | None = None,
    force: bool = False,
) -> IngestionResult:
    """Ingest the landing file of ``source`` for ``day``. Safe to retry; see the module docstring."""
    settings = settings or get_settings()
    spec = SOURCES[source]
    run_id = run_id or f"manual__{uuid.uuid4().hex[:12]}"
    path = settings.storage.landing_file(source, day)
    if path is None:
        raise FileNotFoundError(
            f"no landing file for {source} on {day}: expected {settings.storage.landing_dir / source / f'{day}.csv'} (or .jsonl)"
        )
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    from jobs.platform.spark import get_spark

    spark = get_spark(settings, app_name=f"ingest-{source}")
    timings["spark_session"] = time.perf_counter() - t0

    t = time.perf_counter()
    raw = path.read_bytes()
    checksum = hashlib.sha256(raw).hexdigest()
    log_entry = dict(
        source=source, batch_date=day, source_file=str(path), file_checksum=checksum, run_id=run_id, started_at=started
    )

    def fail(reason: str) -> IngestionError:
        log_entry.update(status=opslog.FAILED, error=reason, finished_at=datetime.now(UTC))
        opslog.append(spark, log_entry)
        return IngestionError(f"{path}: {reason}")

    timings["read"] = time.perf_counter() - t
    t = time.perf_counter()
    # Only the latest attempt counts: after a failed attempt of another file, even a file that
    # succeeded before is processed again.
    latest = None if force else opslog.latest_attempt(spark, source, day)
    previous = latest if opslog.succeeded_with(latest, checksum) else None
    timings["check_log"] = time.perf_counter() - t
    t = time.perf_counter()
    if previous is not None:
        log.info("%s already ingested with the same checksum by run %s: nothing to do", path, previous["run_id"])
        return IngestionResult(
            source=source,
            batch_date=day.isoformat(),
            source_file=str(path),
            file_checksum=checksum,
            status="skipped",
            rows_read=previous["rows_read"],
            rows_accepted=previous["rows_accepted"],
            rows_quarantined=previous["rows_quarantined"],
            bronze_version=previous["bronze_version"],
            quarantine_version=previous["quarantine_version"],
            run_id=run_id,
            seconds=round(time.perf_counter() - t0, 3),
        )
    try:
        parsed = parse_file(path, raw)
    except (IngestionError, UnicodeError, csv.Error) as exc:
        raise fail(f"unreadable file: {exc}") from exc
    missing = [c for c in spec.required if c not in parsed.header] if parsed.header else []
    if missing:
        raise fail(f"unreadable file: header lacks required column(s) {', '.join(missing)}; header was {parsed.header}")
    clashing = sorted({c for c in parsed.header if parsed.header.count(c) > 1 or not c or c in RESERVED_COLUMNS})
    if clashing:
        raise fail(
            f"unreadable file: duplicate, empty or reserved column name(s) {clashing}; header was {parsed.header}"
        )
    timings["read"] += time.perf_counter() - t

    staging_dir = settings.storage.lakehouse_dir / "_staging" / f"{source}-{day}-{uuid.uuid4().hex[:8]}"
    try:
        t = time.perf_counter()
        header = parsed.header or spec.required
        known = _known_elsewhere(
            spark,
            spec,
            _clean(parsed.records[spec.key], parsed.needs_strip)
            if spec.key in parsed.records
            else pd.Series(dtype=object),
            day,
            staging_dir,
        )
        timings["validate_known_ids"] = time.perf_counter() - t
        frame = prepare_for_validation(parsed, spec, known) if len(parsed.records) else parsed.records
        day_start = pd.Timestamp(day)
        outcome = validate_rows(
            frame,
            spec.name,
            {
                "batch_day_start": day_start,
                "batch_day_end": day_start + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1),
                "max_tx_amount": settings.data.max_tx_amount,
            },
        )
        reasons_by_row: dict[int, list[str]] = {}
        for rule, rows in outcome.failures.items():
            for r in rows.tolist():
                reasons_by_row.setdefault(r, []).append(rule)
        bad_idx = np.fromiter(sorted(reasons_by_row), dtype=np.int64, count=len(reasons_by_row))
        is_bad = np.zeros(len(frame), dtype=bool)
        is_bad[bad_idx] = True
        valid = frame[~is_bad] if len(frame) else frame
        timings["validate"] = time.perf_counter() - t

        t = time.perf_counter()
        quarantine_rows = [
            {"raw_line": raw_line, "reasons": [reason], "line_number": number, "_parsed": False}
            for number, raw_line, reason in parsed.rejects
        ]
        if len(bad_idx):
            bad = parsed.records.iloc[bad_idx][parsed.header + ["_line"]].to_dict("records")
            for i, rec in zip(bad_idx.tolist(), bad, strict=True):
                number = int(rec["_line"])
                row = {
                    "raw_line": parsed.raw_lines[number],
                    "reasons": sorted(reasons_by_row[i]),
                    "line_number": number,
                    "_parsed": True,
                }
                row.update({c: rec[c] for c in parsed.header})
                quarantine_rows.append(row)
        quarantine_rows.sort(key=lambda r: r["line_number"])
        accepted, quarantined = len(valid), len(quarantine_rows)
        if parsed.rows_read != accepted + quarantined:
            raise fail(
                f"row counts do not reconcile: read {parsed.rows_read} != accepted {accepted} + quarantined {quarantined}"
            )

        ingested_at = started

        def lineage(sdf):
            return _lineage(sdf, path, checksum, day, ingested_at, run_id)

        bronze_version = _write_bronze(spark, spec, valid, header, day, lineage, staging_dir)
        timings["write_bronze"] = time.perf_counter() - t
        t = time.perf_counter()
        quarantine_version = _write_quarantine(spark, spec, quarantine_rows, header, day, lineage)
        timings["write_quarantine"] = time.perf_counter() - t
    except IngestionError:
        raise
    except Exception as exc:  # recorded, then re-raised: the task fails loudly and may be retried
        raise fail(f"ingestion failed: {type(exc).__name__}: {str(exc)[:500]}") from exc
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)

    reasons: dict[str, int] = {}
    for row in quarantine_rows:
        for reason in row["reasons"]:
            reasons[reason] = reasons.get(reason, 0) + 1
    finished = datetime.now(UTC)
    log_entry.update(
        status=opslog.SUCCEEDED,
        rows_read=parsed.rows_read,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        bronze_version=bronze_version,
        quarantine_version=quarantine_version,
        finished_at=finished,
        validation_summary=json.dumps(
            {
                "structural": {r: sum(1 for x in parsed.rejects if x[2] == r) for r in {x[2] for x in parsed.rejects}},
                **outcome.summary,
            },
            sort_keys=True,
        ),
    )
    t = time.perf_counter()
    opslog.append(spark, log_entry)
    timings["write_log"] = time.perf_counter() - t
    return IngestionResult(
        source=source,
        batch_date=day.isoformat(),
        source_file=str(path),
        file_checksum=checksum,
        status="succeeded",
        rows_read=parsed.rows_read,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        bronze_version=bronze_version,
        quarantine_version=quarantine_version,
        run_id=run_id,
        seconds=round(time.perf_counter() - t0, 3),
        timings={k: round(v, 3) for k, v in timings.items()},
        reasons=dict(sorted(reasons.items())),
    )


def landing_files_ready(day: date, sources: tuple[str, ...] = tuple(SOURCES), settings: Settings | None = None) -> bool:
    """True once every source's landing file for ``day`` exists (what the DAG's sensor pokes)."""
    settings = settings or get_settings()
    missing = [s for s in sources if settings.storage.landing_file(s, day) is None]
    if missing:
        log.info("waiting for %s landing file(s) of %s under %s", ", ".join(missing), day, settings.storage.landing_dir)
    return not missing


def ingest_batch(day: date | str, source: str, run_id: str | None = None) -> dict:
    """Airflow-facing entry point: ingest and return a small summary (fit for XCom)."""
    day = date.fromisoformat(day) if isinstance(day, str) else day
    result = ingest(day, source, run_id=run_id)
    log.info("ingestion summary: %s", result.to_json())
    return {
        k: v
        for k, v in asdict(result).items()
        if k in ("status", "rows_read", "rows_accepted", "rows_quarantined", "bronze_version")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.data.ingest", description="Validate and ingest one landing file."
    )
    parser.add_argument("--date", type=date.fromisoformat, required=True, help="batch date, YYYY-MM-DD")
    parser.add_argument("--source", choices=sorted(SOURCES), default="transactions")
    parser.add_argument("--run-id", help="lineage run id (default: a generated manual__ id)")
    parser.add_argument("--force", action="store_true", help="re-process even if this checksum was ingested")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        result = ingest(args.date, args.source, run_id=args.run_id, force=args.force)
    except (FileNotFoundError, IngestionError) as exc:
        print(
            json.dumps(
                {"status": "failed", "source": args.source, "batch_date": args.date.isoformat(), "error": str(exc)}
            )
        )
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
