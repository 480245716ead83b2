"""The online feature store: each customer's and terminal's recent events, for the scoring service.

One small interface (:class:`OnlineStore`), two backends:

* :class:`SQLiteStore`, the embedded default: one file under ``PIPELINE_DATA_DIR/serving`` in WAL
  mode, so every service worker process reads while another writes; nothing to run.
* :class:`RedisStore`, selected with ``PIPELINE_ONLINE_STORE_URL=redis://host:port/db``: what a
  production deployment runs, shared by service replicas.

What is stored is what :func:`jobs.features.online.online_features` needs and nothing else:

* the **state** of a day, materialized from ``features.customer_state`` / ``features.terminal_state``
  (:func:`materialize_online`, the ``materialize_online`` task of ``data_pipeline``). It is replaced
  as a whole, atomically for readers, and idempotently (materializing the same day twice gives the
  same store). Reports reach the store only this way, once their day's file has landed: the
  registry's rule for when a report is known, so served and offline features agree;
* the **live** events: every transaction the service scores is recorded under its customer and its
  terminal (:meth:`OnlineStore.record`), once per ``transaction_id`` (a retried request does not
  count twice), so the next transaction of the card sees it in its 1-day window as training did.
  Live events the next state covers (time before the state's end) are dropped when it is
  materialized; lookups leave out events older than the longest window.

Times are integer microseconds since the epoch (UTC), as the feature windows are.
``python -m jobs.features.store materialize --date D`` loads day D's state; ``... show`` prints what
the store holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from jobs.config import Settings, get_settings
from jobs.features.registry import CUSTOMER_WINDOWS, DAY_US, FEATURE_SET_VERSION, lookback_days

log = logging.getLogger(__name__)

CUSTOMER_STATE_TABLE = "features.customer_state"
TERMINAL_STATE_TABLE = "features.terminal_state"
SQLITE_FILE = "online_store.sqlite"
CustomerEvents = list[tuple[int, float]]  # (time in µs, amount)
TerminalEvents = list[tuple[int, int | None]]  # (time in µs, report_known_at in µs or None)


class StoreNotReady(RuntimeError):
    """The store holds no state yet (nothing materialized) or a state of another feature set."""


@dataclass(frozen=True)
class LiveTransaction:
    """A transaction the service scored, as the store records it."""

    transaction_id: str
    customer_id: str
    terminal_id: str
    ts_us: int
    amount: float


@dataclass(frozen=True)
class StoreInfo:
    state_date: date
    state_end_us: int  # end of state_date: live events before it are in the state
    feature_set_version: str
    materialized_at: str
    customers: int
    terminals: int


def to_us(ts: datetime) -> int:
    """Microseconds since the epoch of a UTC time (naive = UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """The naive UTC time of ``us`` microseconds since the epoch (what the feature code takes)."""
    return datetime(1970, 1, 1) + timedelta(microseconds=us)


def day_end_us(day: date) -> int:
    return to_us(datetime(day.year, day.month, day.day)) + DAY_US


class OnlineStore(ABC):
    """The recent events of every customer and terminal: a day's state plus the live events after it."""

    def __init__(self, delay_days: int) -> None:
        self.delay_days = delay_days
        self.customer_horizon_us = max(CUSTOMER_WINDOWS) * DAY_US
        self.terminal_horizon_us = lookback_days(delay_days) * DAY_US

    @abstractmethod
    def info(self) -> StoreInfo | None:
        """What was materialized last, or None when the store is empty."""

    @abstractmethod
    def replace_state(
        self,
        info: StoreInfo,
        customers: Iterable[tuple[str, CustomerEvents]],
        terminals: Iterable[tuple[str, TerminalEvents]],
    ) -> None:
        """Replace the whole state with these entities' events, atomically; drop live events before its end."""

    @abstractmethod
    def _read(
        self, customer_id: str, terminal_id: str, state_end_us: int, exclude: str
    ) -> tuple[CustomerEvents, TerminalEvents]:
        """State events plus live events at or after ``state_end_us``, except transaction ``exclude``'s."""

    @abstractmethod
    def record(self, transactions: list[LiveTransaction]) -> int:
        """Add scored transactions to their entities' live events, once per id; return how many were new."""

    @abstractmethod
    def live_count(self) -> int:
        """Number of live transactions held (after pruning)."""

    def close(self) -> None:  # noqa: B027 (a no-op unless the backend holds a connection)
        pass

    def ready_info(self) -> StoreInfo:
        """The store's state, or :class:`StoreNotReady` saying what to run."""
        info = self.info()
        if info is None:
            raise StoreNotReady(
                "the online store is empty: run data_pipeline (its materialize_online task) or "
                "`python -m jobs.features.store materialize --date D`"
            )
        if info.feature_set_version != FEATURE_SET_VERSION:
            raise StoreNotReady(
                f"the online store holds features {info.feature_set_version}, the code computes "
                f"{FEATURE_SET_VERSION}: rebuild the features and materialize again"
            )
        return info

    def history(
        self, customer_id: str, terminal_id: str, ts_us: int, exclude: str = ""
    ) -> tuple[CustomerEvents, TerminalEvents]:
        """The customer's and terminal's events a transaction at ``ts_us`` can see in its windows.

        Events of transaction ``exclude`` (the one being scored, if it was recorded by an earlier
        try) are left out, so a retried request gets the same features as its first try.
        """
        info = self.ready_info()
        customer, terminal = self._read(customer_id, terminal_id, info.state_end_us, exclude)
        c_lo, t_lo = ts_us - self.customer_horizon_us, ts_us - self.terminal_horizon_us
        return [e for e in customer if e[0] > c_lo], [e for e in terminal if e[0] > t_lo]


# ----------------------------------------------------------------------------------------------
# SQLite


class SQLiteStore(OnlineStore):
    """The embedded store: a SQLite file in WAL mode, safe to share between processes on one machine.

    State: one row per entity with its events as JSON (one indexed read per entity); live events:
    one row per transaction, keyed by ``transaction_id``. A materialization is one write transaction,
    so readers see the old state or the new one, never a mix.
    """

    def __init__(self, path: Path, delay_days: int) -> None:
        super().__init__(delay_days)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS customer_state (customer_id TEXT PRIMARY KEY, events TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS terminal_state (terminal_id TEXT PRIMARY KEY, events TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS live (
                transaction_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, terminal_id TEXT NOT NULL,
                ts_us INTEGER NOT NULL, amount REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS live_customer ON live (customer_id, ts_us);
            CREATE INDEX IF NOT EXISTS live_terminal ON live (terminal_id, ts_us);
            CREATE INDEX IF NOT EXISTS live_time ON live (ts_us);
            """
        )
        self._info: tuple[int, StoreInfo | None] | None = None  # (data_version, info) cache

    def info(self) -> StoreInfo | None:
        # PRAGMA data_version changes when another connection commits: re-read meta only then.
        dv = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if self._info is not None and self._info[0] == dv:
            return self._info[1]
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'info'").fetchone()
        info = None if row is None else _info_from(json.loads(row[0]))
        self._info = (dv, info)
        return info

    def replace_state(self, info, customers, terminals) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("DELETE FROM customer_state")
            c.executemany("INSERT INTO customer_state VALUES (?, ?)", ((k, json.dumps(v)) for k, v in customers))
            c.execute("DELETE FROM terminal_state")
            c.executemany("INSERT INTO terminal_state VALUES (?, ?)", ((k, json.dumps(v)) for k, v in terminals))
            c.execute("DELETE FROM live WHERE ts_us < ?", (info.state_end_us,))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('info', ?)", (json.dumps(_info_dict(info)),))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self._info = None

    def _read(self, customer_id, terminal_id, state_end_us, exclude):
        c = self._conn
        c.execute("BEGIN")  # one snapshot: a materialization committing meanwhile is seen whole or not at all
        try:
            return self._read_snapshot(customer_id, terminal_id, state_end_us, exclude)
        finally:
            c.execute("COMMIT")

    def _read_snapshot(self, customer_id, terminal_id, state_end_us, exclude):
        c = self._conn
        meta = c.execute("SELECT value FROM meta WHERE key = 'info'").fetchone()
        if meta is not None:  # the state end of this snapshot, not of an earlier read
            state_end_us = json.loads(meta[0])["state_end_us"]
        row = c.execute("SELECT events FROM customer_state WHERE customer_id = ?", (customer_id,)).fetchone()
        customer = [tuple(e) for e in json.loads(row[0])] if row else []
        customer += c.execute(
            "SELECT ts_us, amount FROM live WHERE customer_id = ? AND ts_us >= ? AND transaction_id != ?",
            (customer_id, state_end_us, exclude),
        ).fetchall()
        row = c.execute("SELECT events FROM terminal_state WHERE terminal_id = ?", (terminal_id,)).fetchone()
        terminal = [tuple(e) for e in json.loads(row[0])] if row else []
        terminal += [
            (ts, None)
            for (ts,) in c.execute(
                "SELECT ts_us FROM live WHERE terminal_id = ? AND ts_us >= ? AND transaction_id != ?",
                (terminal_id, state_end_us, exclude),
            )
        ]
        return customer, terminal

    def record(self, transactions) -> int:
        if not transactions:
            return 0
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO live VALUES (?, ?, ?, ?, ?)",
                [(t.transaction_id, t.customer_id, t.terminal_id, t.ts_us, t.amount) for t in transactions],
            )
            added = c.total_changes - before
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return added

    def live_count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM live").fetchone()[0]

    def close(self) -> None:
        self._conn.close()


# ----------------------------------------------------------------------------------------------
# Redis


class RedisStore(OnlineStore):
    """The production backend: Redis, shared by every replica of the service.

    State: one string key per entity and materialization (``<prefix>:s:<generation>:c:<id>``); a
    materialization writes a new generation, then switches the ``<prefix>:meta`` hash to it in one
    command (readers see the old state or the new one) and deletes the old generation. Live events:
    a sorted set per entity scored by time, members carrying the transaction id, and a
    ``<prefix>:tx:<id>`` key set with NX so a transaction is recorded once. Live keys expire after the
    longest window.
    """

    def __init__(self, url: str, delay_days: int, prefix: str = "fraud") -> None:
        super().__init__(delay_days)
        import redis

        self.url, self.prefix = url, prefix
        self._r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._r.ping()
        self._ttl_s = (max(self.customer_horizon_us, self.terminal_horizon_us) // 1_000_000) + 86_400
        self._record = self._r.register_script(self._RECORD)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def info(self) -> StoreInfo | None:
        raw = self._r.hget(self._key("meta"), "info")
        return None if raw is None else _info_from(json.loads(raw))

    def _generation(self) -> str | None:
        raw = self._r.hget(self._key("meta"), "generation")
        return raw.decode() if raw else None

    # Record a transaction once: mark its id (NX) and add it to both sorted sets in one atomic step,
    # so a crash or timeout between the two cannot leave an id marked but not added.
    _RECORD = """
    if redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then
      redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
      redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
      redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
      redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
      redis.call('EXPIRE', KEYS[2], ARGV[1])
      redis.call('EXPIRE', KEYS[3], ARGV[1])
      return 1
    end
    return 0
    """

    def replace_state(self, info, customers, terminals) -> None:
        gen = uuid.uuid4().hex[:12]
        pipe = self._r.pipeline(transaction=False)
        for kind, rows in (("c", customers), ("t", terminals)):
            for i, (key, events) in enumerate(rows, 1):
                pipe.set(self._key("s", gen, kind, key), json.dumps(events))
                if i % 5000 == 0:
                    pipe.execute()
        pipe.execute()
        self._r.hset(self._key("meta"), mapping={"generation": gen, "info": json.dumps(_info_dict(info))})
        # earlier generations expire rather than vanish: a reader that fetched the old generation a
        # moment ago still finds its keys (and a load that failed half-way leaves nothing forever)
        current = self._key("s", gen, "")
        pipe = self._r.pipeline(transaction=False)
        for i, key in enumerate(self._r.scan_iter(match=self._key("s", "*"), count=1000), 1):
            if not key.decode().startswith(current):
                pipe.expire(key, 120, nx=True)
            if i % 1000 == 0:
                pipe.execute()
        pipe.execute()
        self._delete_matching(self._key("lc", "*"), below=info.state_end_us)
        self._delete_matching(self._key("lt", "*"), below=info.state_end_us)

    def _delete_matching(self, pattern: str, below: int | None = None) -> None:
        """Delete keys matching ``pattern``; with ``below``, only the sorted-set members scored below it."""
        pipe = self._r.pipeline(transaction=False)
        for i, key in enumerate(self._r.scan_iter(match=pattern, count=1000)):
            if below is None:
                pipe.unlink(key)
            else:
                pipe.zremrangebyscore(key, "-inf", f"({below}")
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()

    def _read(self, customer_id, terminal_id, state_end_us, exclude):
        raw_info, raw_gen = self._r.hmget(self._key("meta"), ["info", "generation"])  # one consistent read
        gen = raw_gen.decode() if raw_gen else None
        if raw_info is not None:
            state_end_us = json.loads(raw_info)["state_end_us"]
        pipe = self._r.pipeline(transaction=False)
        pipe.get(self._key("s", gen, "c", customer_id))
        pipe.get(self._key("s", gen, "t", terminal_id))
        pipe.zrangebyscore(self._key("lc", customer_id), state_end_us, "+inf", withscores=True)
        pipe.zrangebyscore(self._key("lt", terminal_id), state_end_us, "+inf", withscores=True)
        c_state, t_state, c_live, t_live = pipe.execute()
        customer = [tuple(e) for e in json.loads(c_state)] if c_state else []
        for member, score in c_live:
            tx, amount = member.decode().rsplit("|", 1)
            if tx != exclude:
                customer.append((int(score), float(amount)))
        terminal = [tuple(e) for e in json.loads(t_state)] if t_state else []
        terminal += [(int(score), None) for member, score in t_live if member.decode() != exclude]
        return customer, terminal

    def record(self, transactions) -> int:
        if not transactions:
            return 0
        horizon = max(self.customer_horizon_us, self.terminal_horizon_us)
        added = 0
        for t in transactions:
            keys = [self._key("tx", t.transaction_id), self._key("lc", t.customer_id), self._key("lt", t.terminal_id)]
            args = [self._ttl_s, t.ts_us, f"{t.transaction_id}|{t.amount!r}", t.transaction_id, t.ts_us - horizon]
            added += int(self._record(keys=keys, args=args))
        return added

    def live_count(self) -> int:
        return sum(self._r.zcard(k) for k in self._r.scan_iter(match=self._key("lc", "*"), count=1000))

    def close(self) -> None:
        self._r.close()


# ----------------------------------------------------------------------------------------------


def _info_dict(info: StoreInfo) -> dict:
    return {**info.__dict__, "state_date": info.state_date.isoformat()}


def _info_from(d: dict) -> StoreInfo:
    return StoreInfo(**{**d, "state_date": date.fromisoformat(d["state_date"])})


def open_store(settings: Settings | None = None) -> OnlineStore:
    """The store ``PIPELINE_ONLINE_STORE_URL`` names (empty: the SQLite file under the data dir)."""
    settings = settings or get_settings()
    delay = settings.features.label_delay_days
    if settings.serving.backend == "redis":
        return RedisStore(settings.serving.online_store_url, delay)
    return SQLiteStore(settings.storage.serving_dir / SQLITE_FILE, delay)


def _state_rows(settings: Settings, table: str, day: date, value_field: str) -> Iterator[tuple[str, list]]:
    """(entity id, [(µs, value), ...]) for every entity in ``table``'s partition ``day``, read with delta-rs."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from jobs.platform import delta

    key = table.split(".")[1].replace("_state", "_id")
    data = DeltaTable(str(delta.path(settings, table))).to_pyarrow_table(
        columns=[key, "events", "feature_set_version"], filters=[("state_date", "=", day)]
    )
    versions = set(data.column("feature_set_version").unique().to_pylist())
    if versions - {FEATURE_SET_VERSION}:
        raise StoreNotReady(
            f"{table} for {day} holds features {sorted(versions)}; the code computes {FEATURE_SET_VERSION}"
        )
    events = data.column("events").combine_chunks()
    flat = pc.list_flatten(events)
    offsets = events.offsets.to_numpy()
    ts = flat.field("tx_datetime").cast(pa.int64()).to_numpy(zero_copy_only=False)
    values = flat.field(value_field)
    if value_field == "report_known_at":
        known = values.cast(pa.int64()).to_pylist()  # None where no report was known
    else:
        known = values.to_numpy(zero_copy_only=False).tolist()
    ts_list = np.asarray(ts, dtype=np.int64).tolist()
    for i, entity in enumerate(data.column(key).to_pylist()):
        lo, hi = offsets[i], offsets[i + 1]
        yield entity, [[ts_list[j], known[j]] for j in range(lo, hi)]


def materialize_online(
    day: date | str, settings: Settings | None = None, store: OnlineStore | None = None, force: bool = False
) -> dict:
    """Load the state of ``day`` (``features.*_state``, partition ``state_date = day``) into the store.

    Idempotent: the store's state is replaced as a whole. Live events before the end of ``day`` are
    dropped (the state now holds them, with their reports as known at the end of the day). A day
    older than the store's state is skipped (a backfill of an old day must not roll the store back
    and lose the live events since), unless ``force``.
    """
    from jobs.platform import delta

    day = date.fromisoformat(day) if isinstance(day, str) else day
    settings = settings or get_settings()
    for table in (CUSTOMER_STATE_TABLE, TERMINAL_STATE_TABLE):
        if not delta.exists(settings, table):
            raise ValueError(f"{table} does not exist: run the feature job first")
    own = store is None
    store = store or open_store(settings)
    try:
        current = store.info()  # checked before reading Delta: a skipped day costs nothing
        if current is not None and current.state_date > day and not force:
            log.warning("online store holds the state of %s, newer than %s: left as it is", current.state_date, day)
            return {
                "state_date": day.isoformat(),
                "skipped": f"the store holds the newer state of {current.state_date}",
            }
        t0 = time.perf_counter()
        customers = list(_state_rows(settings, CUSTOMER_STATE_TABLE, day, "tx_amount"))
        terminals = list(_state_rows(settings, TERMINAL_STATE_TABLE, day, "report_known_at"))
        if not customers or not terminals:
            raise ValueError(f"no online state for {day} in features.*_state: build the features of {day} first")
        read_s = time.perf_counter() - t0
        info = StoreInfo(
            state_date=day,
            state_end_us=day_end_us(day),
            feature_set_version=FEATURE_SET_VERSION,
            materialized_at=datetime.now(UTC).isoformat(timespec="seconds"),
            customers=len(customers),
            terminals=len(terminals),
        )
        store.replace_state(info, customers, terminals)
        live = store.live_count()
    finally:
        if own:
            store.close()
    summary = {
        "state_date": day.isoformat(),
        "backend": settings.serving.backend,
        "customers": len(customers),
        "terminals": len(terminals),
        "events": sum(len(e) for _, e in customers) + sum(len(e) for _, e in terminals),
        "live_transactions_kept": live,
        "feature_set_version": FEATURE_SET_VERSION,
        "read_seconds": round(read_s, 2),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info("materialized the online store: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m jobs.features.store", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("materialize", help="load features.*_state of a day into the online store")
    m.add_argument("--date", type=date.fromisoformat, required=True, help="state date, YYYY-MM-DD")
    m.add_argument("--force", action="store_true", help="load it even if the store holds a newer day")
    sub.add_parser("show", help="print what the store holds")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.command == "materialize":
            print(json.dumps(materialize_online(args.date, force=args.force)))
        else:
            store = open_store()
            info = store.info()
            print(json.dumps({**(_info_dict(info) if info else {}), "live_transactions": store.live_count()}))
    except (ValueError, StoreNotReady) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
