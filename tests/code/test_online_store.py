"""The online store's contract, run against both backends: the embedded SQLite file and a real Redis.

Redis runs as a throwaway ``redis-server`` process; `.ci/run` installs the Debian package when it is
missing. Without it the Redis cases fail (they never skip): the README lists it as a prerequisite.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import time
from datetime import date, datetime, timedelta

import pytest

from jobs.features.registry import DAY_US, FEATURE_SET_VERSION
from jobs.features.store import (
    LiveTransaction,
    RedisStore,
    SQLiteStore,
    StoreInfo,
    StoreNotReady,
    day_end_us,
    to_us,
)

DELAY = 7
DAY = date(2026, 3, 10)
END = day_end_us(DAY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(
            "redis-server is not on PATH: the Redis backend of the online store is tested against a real server "
            "(apt-get install redis-server; .ci/run installs it)"
        )
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "store.sqlite", DELAY)
    else:
        url = request.getfixturevalue("redis_url")
        s = RedisStore(url, DELAY, prefix=f"test{time.monotonic_ns()}")
    yield s
    s.close()


def _info(day: date = DAY, fsv: str = FEATURE_SET_VERSION, customers: int = 2, terminals: int = 1) -> StoreInfo:
    return StoreInfo(day, day_end_us(day), fsv, "2026-03-11T00:05:00+00:00", customers, terminals)


def us(day: date, hour: int = 0, minute: int = 0) -> int:
    return to_us(datetime(day.year, day.month, day.day, hour, minute))


STATE_CUSTOMERS = [
    ("C1", [[us(DAY - timedelta(days=29), 9), 10.0], [us(DAY, 8), 25.5]]),
    ("C2", [[us(DAY, 12), 3.25]]),
]
STATE_TERMINALS = [("T1", [[us(DAY - timedelta(days=20), 9), us(DAY - timedelta(days=19))], [us(DAY, 8), None]])]


def test_empty_store_is_not_ready(store):
    assert store.info() is None
    with pytest.raises(StoreNotReady, match="materialize"):
        store.history("C1", "T1", END)


def test_materialize_and_read(store):
    store.replace_state(_info(), STATE_CUSTOMERS, STATE_TERMINALS)
    assert store.ready_info().state_date == DAY
    t = END + 3600 * 1_000_000  # 01:00 the next day
    customer, terminal = store.history("C1", "T1", t)
    assert sorted(customer) == [(us(DAY - timedelta(days=29), 9), 10.0), (us(DAY, 8), 25.5)]
    assert sorted(terminal) == [(us(DAY - timedelta(days=20), 9), us(DAY - timedelta(days=19))), (us(DAY, 8), None)]
    assert store.history("C-unknown", "T-unknown", t) == ([], [])
    # materializing the same state again changes nothing (idempotent)
    store.replace_state(_info(), STATE_CUSTOMERS, STATE_TERMINALS)
    assert store.history("C1", "T1", t) == (customer, terminal)


def test_feature_set_mismatch_is_not_ready(store):
    store.replace_state(_info(fsv="v0-old"), STATE_CUSTOMERS, STATE_TERMINALS)
    with pytest.raises(StoreNotReady, match="v0-old"):
        store.ready_info()


def test_record_is_idempotent_per_transaction(store):
    store.replace_state(_info(), STATE_CUSTOMERS, STATE_TERMINALS)
    tx = LiveTransaction("tx-1", "C1", "T1", END + 60_000_000, 99.5)
    assert store.record([tx]) == 1
    assert store.record([tx]) == 0  # a retried request
    assert store.record([LiveTransaction("tx-1", "C1", "T1", END + 60_000_000, 1.0)]) == 0  # same id, other body
    customer, terminal = store.history("C1", "T1", END + 120_000_000)
    assert customer.count((END + 60_000_000, 99.5)) == 1 and len(customer) == 3
    assert terminal.count((END + 60_000_000, None)) == 1 and len(terminal) == 3
    # the transaction's own retry does not see itself
    customer, terminal = store.history("C1", "T1", END + 60_000_000, exclude="tx-1")
    assert len(customer) == 2 and len(terminal) == 2
    assert store.live_count() == 1


def test_next_materialization_absorbs_live_events(store):
    store.replace_state(_info(), STATE_CUSTOMERS, STATE_TERMINALS)
    next_day = DAY + timedelta(days=1)
    early, late = us(next_day, 10), day_end_us(next_day) + 5 * 60_000_000
    store.record([LiveTransaction("tx-a", "C2", "T1", early, 7.0), LiveTransaction("tx-b", "C2", "T1", late, 8.0)])
    # the feature job's state of the next day holds tx-a (with its report status as of that day's end)
    customers = [("C2", [[us(DAY, 12), 3.25], [early, 7.0]])]
    terminals = [("T1", [*STATE_TERMINALS[0][1], [early, None]])]
    store.replace_state(_info(next_day, customers=1), customers, terminals)
    assert store.live_count() == 1  # tx-a is in the state now; tx-b (after the state's end) stays live
    customer, terminal = store.history("C2", "T1", late + 1)
    assert sorted(customer) == [(us(DAY, 12), 3.25), (early, 7.0), (late, 8.0)]  # each exactly once
    assert sorted(terminal)[-2:] == [(early, None), (late, None)]
    assert store.history("C1", "T1", late + 1)[0] == []  # C1 is not in the new state


def test_retention_of_old_events(store):
    store.replace_state(_info(), STATE_CUSTOMERS, STATE_TERMINALS)
    # 31 days after C1's oldest event, it is outside every customer window: not returned
    t = us(DAY - timedelta(days=29), 9) + 30 * DAY_US + 1
    customer, _ = store.history("C1", "T1", t)
    assert (us(DAY - timedelta(days=29), 9), 10.0) not in customer
    # a live event older than the longest window is left out of lookups, and dropped by the next state
    store.record([LiveTransaction("old", "C9", "T9", END + 1, 1.0)])
    store.record([LiveTransaction("new", "C9", "T9", END + 40 * DAY_US, 2.0)])
    customer, terminal = store.history("C9", "T9", END + 40 * DAY_US + 1)
    assert customer == [(END + 40 * DAY_US, 2.0)] and terminal == [(END + 40 * DAY_US, None)]
    later = DAY + timedelta(days=39)
    store.replace_state(_info(later), [], [])
    assert store.live_count() == 1  # "old" is before the new state's end; "new" is after it


def test_a_far_future_transaction_does_not_erase_other_cards(store):
    store.replace_state(_info(), STATE_CUSTOMERS, STATE_TERMINALS)
    store.record([LiveTransaction("today", "C1", "T1", END + 60_000_000, 5.0)])
    store.record([LiveTransaction("future", "C7", "T7", END + 4000 * DAY_US, 5.0)])
    assert (END + 60_000_000, 5.0) in store.history("C1", "T1", END + 120_000_000)[0]


def _record_many(args):
    path, worker, n = args
    s = SQLiteStore(path, DELAY)
    for i in range(n):
        s.record([LiveTransaction(f"w{worker}-{i}", f"C{i % 7}", f"T{i % 5}", END + i * 1_000_000, float(i))])
    s.close()


def test_sqlite_is_shared_safely_between_processes(tmp_path):
    path = tmp_path / "store.sqlite"
    s = SQLiteStore(path, DELAY)
    s.replace_state(_info(), STATE_CUSTOMERS, STATE_TERMINALS)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_record_many, [(path, 0, 150), (path, 1, 150), (path, 0, 150)])  # the third repeats ids
    assert s.live_count() == 300
    customer, _ = s.history("C0", "T0", END + 10_000 * 1_000_000)
    assert len(customer) == 2 * len(range(0, 150, 7))
    s.close()


def test_abandoned_prediction_log_files_are_closed_and_kept(tmp_path):
    """A worker killed mid-write leaves a .open file: once stale, its complete lines are kept and it is closed."""
    from jobs.scoring.prediction_log import close_abandoned

    stale = tmp_path / "20260101T000000-123-abcd.jsonl.open"
    stale.write_text('{"header": true}\n{"transaction_id": "a"}\n{"transaction_id": "b", "sc')
    fresh = tmp_path / "20260101T000000-456-efgh.jsonl.open"
    fresh.write_text('{"header": true}\n')
    now = stale.stat().st_mtime + 2 * 300 + 61
    os.utime(fresh, (now, now))
    assert close_abandoned(tmp_path, rotate_s=300, now=now) == [stale.name]
    closed = tmp_path / "20260101T000000-123-abcd.jsonl"
    assert closed.read_text().splitlines() == ['{"header": true}', '{"transaction_id": "a"}']
    assert fresh.exists()  # a live worker's file is left alone
