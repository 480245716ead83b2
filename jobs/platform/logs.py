"""One logging set-up for every command-line entry point (``python -m jobs.<package>.<module>``)."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int | str = logging.INFO) -> None:
    """Log to stderr with the project's format at ``level``. Safe to call more than once."""
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger().setLevel(level)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # py4j logs at interpreter exit, after handlers close


class Progress:
    """Progress of long work in the log (so in Airflow's task log too): n of N, rows/s, time left.

    ``Progress("ingest transactions", 42, unit="file")``, then ``advance(rows=...)`` after each item; a
    line is logged after the first item, then at most every ``every_s`` seconds, and after the last.
    """

    def __init__(
        self, what: str, total: int, unit: str = "day", every_s: float = 5.0, logger: logging.Logger | None = None
    ):
        import time

        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.done = self.rows = 0
        self.started = self._last = time.perf_counter()
        self.log = logger or logging.getLogger("jobs.progress")

    def advance(self, n: int = 1, rows: int = 0) -> None:
        import time

        self.done += n
        self.rows += rows
        now = time.perf_counter()
        if self.done == n or self.done >= self.total or now - self._last >= self.every_s:
            self._last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        import time

        elapsed = max((now or time.perf_counter()) - self.started, 1e-9)
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        rate = f", {self.rows / elapsed:,.0f} rows/s" if self.rows else ""
        return f"{self.what}: {self.unit} {self.done} of {self.total}{rate}, {elapsed:.1f} s elapsed, about {left:.0f} s left"
