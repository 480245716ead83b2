"""Load the service's prediction-log files into the Delta table ``monitoring.prediction_log``.

The service writes JSON lines under ``PIPELINE_DATA_DIR/serving/prediction_log/`` and closes a file
(``.jsonl``) when it rotates or stops (:mod:`serving.predlog`). :func:`load_prediction_log` appends
every closed file not loaded yet, one Delta commit per file with its name in ``source_file``, then
moves it to ``loaded/``; a file whose name is already in the table is only moved. So a retried or
crashed task loads each file exactly once: no row lost, none duplicated. Open files (``.jsonl.open``)
belong to a running worker and wait for the next run, unless untouched for twice the rotation
interval: their worker died, and they are closed and loaded (:func:`close_abandoned`).
``python -m jobs.scoring.prediction_log`` runs it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

import pyarrow as pa

from jobs.config import Settings, get_settings
from jobs.platform import delta
from jobs.platform.faults import failpoint

log = logging.getLogger(__name__)

CLOSED_SUFFIX = ".jsonl"
LOADED_DIR = "loaded"

SPEC = delta.TableSpec(
    "monitoring.prediction_log",
    pa.schema(
        [
            pa.field("request_id", pa.string(), nullable=False),
            pa.field("transaction_id", pa.string(), nullable=False),
            pa.field("customer_id", pa.string(), nullable=False),
            pa.field("terminal_id", pa.string(), nullable=False),
            pa.field("tx_datetime", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("tx_amount", pa.float64(), nullable=False),
            pa.field("served_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("served_date", pa.date32(), nullable=False),
            pa.field("model_name", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("feature_set_version", pa.string(), nullable=False),
            pa.field("score", pa.float64(), nullable=False),
            pa.field("alert", pa.bool_(), nullable=False),
            pa.field("latency_ms", pa.float64(), nullable=False),
            pa.field("features", pa.map_(pa.string(), pa.float64()), nullable=False),
            pa.field("source_file", pa.string(), nullable=False),
            pa.field("loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
            # deployment (deploy_model): who answered (champion, canary, or fallback: the champion
            # answered for a failing candidate), and a shadow candidate's score of the same row
            pa.field("path", pa.string()),
            pa.field("shadow_version", pa.string()),
            pa.field("shadow_score", pa.float64()),
            pa.field("shadow_alert", pa.bool_()),
            pa.field("candidate_error", pa.string()),
        ]
    ),
    ("served_date",),
)


def _rows(path, loaded_at: datetime) -> pa.Table:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    header = next((r for r in lines if r.get("header")), None)
    if header is None:
        raise ValueError(f"{path} has no header line (the feature names): not a prediction-log file")
    names = header["feature_names"]
    records = [r for r in lines if not r.get("header")]
    served = [datetime.fromisoformat(r["served_at"]) for r in records]
    return pa.table(
        {
            "request_id": [r["request_id"] for r in records],
            "transaction_id": [r["transaction_id"] for r in records],
            "customer_id": [r["customer_id"] for r in records],
            "terminal_id": [r["terminal_id"] for r in records],
            "tx_datetime": pa.array(
                [datetime.fromisoformat(r["tx_datetime"]).replace(tzinfo=UTC) for r in records],
                pa.timestamp("us", tz="UTC"),
            ),
            "tx_amount": [float(r["tx_amount"]) for r in records],
            "served_at": pa.array(served, pa.timestamp("us", tz="UTC")),
            "served_date": pa.array([s.date() for s in served], pa.date32()),
            "model_name": [r["model_name"] for r in records],
            "model_version": [str(r["model_version"]) for r in records],
            "feature_set_version": [r["feature_set_version"] for r in records],
            "score": [float(r["score"]) for r in records],
            "alert": [bool(r["alert"]) for r in records],
            "latency_ms": [float(r["latency_ms"]) for r in records],
            "features": pa.array(
                [list(zip(names, map(float, r["features"]), strict=True)) for r in records],
                pa.map_(pa.string(), pa.float64()),
            ),
            "source_file": [path.name] * len(records),
            "loaded_at": pa.array([loaded_at] * len(records), pa.timestamp("us", tz="UTC")),
            "path": [r.get("path", "champion") for r in records],
            "shadow_version": [r.get("shadow_version") for r in records],
            "shadow_score": pa.array([r.get("shadow_score") for r in records], pa.float64()),
            "shadow_alert": pa.array([r.get("shadow_alert") for r in records], pa.bool_()),
            "candidate_error": [r.get("candidate_error") for r in records],
        },
        schema=SPEC.schema,
    )


def loaded_files(settings: Settings) -> set[str]:
    """Names of the files already in ``monitoring.prediction_log``."""
    if not delta.exists(settings, SPEC.name):
        return set()
    return set(delta.read(settings, SPEC, columns=["source_file"]).column("source_file").unique().to_pylist())


def close_abandoned(directory, rotate_s: float, now: float | None = None) -> list[str]:
    """Close the open files of workers that died: untouched for twice the rotation interval.

    A live worker writes and rotates its file at least every ``rotate_s`` seconds; a file older
    than that belongs to a process that was killed. Its complete lines are kept (a line cut by the
    kill is dropped) and it is renamed to ``.jsonl``, so its answers are loaded like any other's.
    """
    import time

    now = time.time() if now is None else now
    closed = []
    for path in sorted(directory.glob(f"*{CLOSED_SUFFIX}.open")):
        if now - path.stat().st_mtime < 2 * rotate_s + 60:
            continue
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        path.write_bytes(complete)
        path.rename(path.with_name(path.name.removesuffix(".open")))
        closed.append(path.name)
    if closed:
        log.warning(
            "closed %d prediction-log file(s) of workers that stopped without closing them: %s", len(closed), closed
        )
    return closed


def load_prediction_log(settings: Settings | None = None) -> dict:
    """Append every closed, not yet loaded prediction-log file to ``monitoring.prediction_log``."""
    settings = settings or get_settings()
    directory = settings.storage.prediction_log_dir
    done_dir = directory / LOADED_DIR
    abandoned = close_abandoned(directory, settings.serving.log_rotate_s) if directory.is_dir() else []
    files = sorted(directory.glob(f"*{CLOSED_SUFFIX}")) if directory.is_dir() else []
    already = loaded_files(settings) if files else set()
    loaded, rows, skipped = 0, 0, 0
    now = datetime.now(UTC)
    for path in files:
        if path.name not in already:
            table = _rows(path, now)
            if table.num_rows:
                delta.append(settings, SPEC, table, evolve=True)  # tables from before the deployment columns
                rows += table.num_rows
            loaded += 1
            failpoint("prediction_log:after_append")
        else:
            skipped += 1
        done_dir.mkdir(parents=True, exist_ok=True)
        path.rename(done_dir / path.name)
    waiting = len(list(directory.glob("*.jsonl.open"))) if directory.is_dir() else 0
    summary = {
        "files_loaded": loaded,
        "rows": rows,
        "files_already_loaded": skipped,
        "open_files_waiting": waiting,
        "abandoned_files_closed": len(abandoned),
        "table_version": delta.version(settings, SPEC.name),
    }
    log.info("prediction log: %s", summary)
    return summary


def read_recent(since: datetime, settings: Settings | None = None) -> list[dict]:
    """Every logged answer served at or after ``since``, from the files as the service writes them.

    Open files included (a worker's current file; its last line may be cut mid-write and is
    skipped), closed ones, and those already loaded (``loaded/``): what ``deploy_model`` compares
    while a rollout is live, without waiting for a rotation or a load. Files last written before
    ``since`` are not opened.
    """
    settings = settings or get_settings()
    directory = settings.storage.prediction_log_dir
    if not directory.is_dir():
        return []
    cutoff = since.timestamp()
    seen: dict[str, dict] = {}  # by request_id: a file renamed while listing may be read twice
    paths = [*directory.glob("*.jsonl*"), *(directory / LOADED_DIR).glob("*.jsonl")]
    for path in paths:
        text = None
        closed = path.name.removesuffix(".open")
        for candidate in (path, path.with_name(closed), directory / LOADED_DIR / closed):
            try:  # rotated (.open -> .jsonl) or loaded (-> loaded/) since the listing: read it where it went
                if candidate.stat().st_mtime < cutoff:
                    break
                text = candidate.read_text(encoding="utf-8")
                break
            except FileNotFoundError:
                continue
        for line in (text or "").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line being written
                continue
            if record.get("header"):
                continue
            if datetime.fromisoformat(record["served_at"]) >= since:
                seen[record["request_id"]] = record
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging

    setup_logging()
    print(json.dumps(load_prediction_log()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
