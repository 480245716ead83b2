"""The prediction log: every answered transaction, written to local files off the request path.

Each file starts with a header line (``{"header": true, ...}``: the feature names, in the order of
every record's ``features`` list), then one JSON object per answered transaction.

Each service worker appends JSON lines to its own file under
``PIPELINE_DATA_DIR/serving/prediction_log/`` from a background thread; a file is written as
``<start>-<pid>-<id>.jsonl.open`` and renamed to ``.jsonl`` when closed (every
``PIPELINE_PREDICTION_LOG_ROTATE_S`` seconds, and at shutdown), so a reader only ever loads complete
files. :meth:`PredictionLog.close` drains the queue first: a graceful shutdown (SIGTERM) loses nothing
that was answered. ``batch_score`` loads closed files into ``monitoring.prediction_log``
(:mod:`jobs.scoring.prediction_log`).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
_STOP = object()


class PredictionLog:
    """Append-only JSON-lines files, one writer thread per process."""

    def __init__(self, directory: Path, rotate_s: float = 300.0, header: dict | None = None) -> None:
        self.directory = Path(directory)
        self.header = {"header": True, **(header or {})}
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rotate_s = rotate_s
        self.written = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._file = None
        self._path: Path | None = None
        self._opened = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def write(self, records: list[dict]) -> None:
        """Queue records for writing (returns at once)."""
        self._queue.put(records)

    def _open(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._path = self.directory / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}{OPEN_SUFFIX}"
        self._file = self._path.open("a", encoding="utf-8")
        self._file.write(json.dumps(self.header, separators=(",", ":")) + "\n")
        self._opened = time.monotonic()

    def _close_file(self) -> None:
        if self._file is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._path.rename(self._path.with_name(self._path.name.removesuffix(OPEN_SUFFIX) + CLOSED_SUFFIX))
        self._file = self._path = None

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._close_file()
                return
            if item:
                if self._file is None:
                    self._open()
                self._file.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in item))
                self.written += len(item)
                while True:  # drain what queued meanwhile, then flush once
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        self._close_file()
                        return
                    self._file.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in more))
                    self.written += len(more)
                self._file.flush()
            if self._file is not None and time.monotonic() - self._opened >= self.rotate_s:
                self._close_file()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, close and rename the file; idempotent."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        log.info("prediction log closed: %d records written by pid %d", self.written, os.getpid())
