"""Point-in-time features: the Spark job equals a brute-force reference, exactly, and never leaks.

The reference below recomputes every feature by scanning the whole history of the transaction's
customer and terminal for each transaction; it shares no code with the job (nor with the serving
path, which is compared too).
"""

from __future__ import annotations

from collections import defaultdict, namedtuple
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs.features.online import online_features
from jobs.features.registry import FEATURE_NAMES

DELAY = 7
BASE = datetime(2026, 2, 1, tzinfo=UTC)
# known_at: when the transaction's fraud report became known (the end of its file's day); None = never.
Tx = namedtuple("Tx", "transaction_id tx_datetime customer_id terminal_id cents known_at")
NO_FRAUD = 999.0  # terminal_days_since_known_fraud without a known fraud in the last 28 days


def reference_features(rows: list[Tx], delay: int = DELAY, targets: list[Tx] | None = None) -> dict[str, dict]:
    """Every feature of every target row (default: all rows), by brute force over ``rows``."""
    out = {}
    by_customer, by_terminal = defaultdict(list), defaultdict(list)  # each entity's whole history, scanned per row
    for x in rows:
        by_customer[x.customer_id].append(x)
        by_terminal[x.terminal_id].append(x)
    for r in rows if targets is None else targets:
        t = r.tx_datetime
        f = {
            "tx_amount": r.cents / 100,
            "tx_during_weekend": 1 if t.weekday() in (5, 6) else 0,
            "tx_during_night": 1 if t.hour <= 6 else 0,
        }
        for n in (1, 7, 30):
            mine = [x.cents for x in by_customer[r.customer_id] if t - timedelta(days=n) < x.tx_datetime <= t]
            f[f"customer_nb_tx_{n}d"] = len(mine)
            f[f"customer_avg_amount_{n}d"] = sum(mine) / len(mine) / 100
        f["customer_amount_ratio_30d"] = (
            (r.cents / 100) / f["customer_avg_amount_30d"] if f["customer_avg_amount_30d"] else 1.0
        )
        terminal = by_terminal[r.terminal_id]
        known_at_t = [x for x in terminal if x.known_at is not None and x.known_at <= t]
        for n in (1, 7, 30):
            lo, hi = t - timedelta(days=n + delay), t - timedelta(days=delay)
            window = [x for x in terminal if lo < x.tx_datetime <= hi]
            known = [x for x in known_at_t if lo < x.tx_datetime <= hi]
            f[f"terminal_nb_tx_{n}d"] = len(window)
            f[f"terminal_risk_{n}d"] = len(known) / len(window) if window else 0.0
        for n in (3, 7, 14, 28):
            lo = t - timedelta(days=n)
            window = [x for x in terminal if lo < x.tx_datetime <= t]
            known = [x for x in known_at_t if lo < x.tx_datetime <= t]
            f[f"terminal_known_fraud_{n}d"] = len(known)
            f[f"terminal_known_fraud_share_{n}d"] = len(known) / len(window)
        recent = [x.tx_datetime for x in known_at_t if t - timedelta(days=28) < x.tx_datetime <= t]
        f["terminal_days_since_known_fraud"] = (
            (t - max(recent)) / timedelta(microseconds=1) / 86_400_000_000 if recent else NO_FRAUD
        )
        out[r.transaction_id] = f
    return out


def spark_features(spark, rows: list[Tx], delay: int = DELAY) -> dict[str, dict]:
    from jobs.features.build import compute_features

    frame = spark.createDataFrame(
        [
            (
                r.transaction_id,
                r.tx_datetime,
                r.customer_id,
                r.terminal_id,
                r.cents / 100,
                r.known_at,
                BASE.date(),
                True,
            )
            for r in rows
        ],
        "transaction_id string, tx_datetime timestamp, customer_id string, terminal_id string, tx_amount double, "
        "report_known_at timestamp, batch_date date, is_target boolean",
    )
    return {
        row["transaction_id"]: {k: row[k] for k in FEATURE_NAMES} for row in compute_features(frame, delay).collect()
    }


def serving_features(rows: list[Tx], delay: int = DELAY) -> dict[str, dict]:
    out = {}
    for r in rows:
        customer = [
            (x.tx_datetime, x.cents / 100)
            for x in rows
            if x.customer_id == r.customer_id and x is not r and x.tx_datetime <= r.tx_datetime
        ]
        terminal = [
            (x.tx_datetime, x.known_at)
            for x in rows
            if x.terminal_id == r.terminal_id and x is not r and x.tx_datetime <= r.tx_datetime
        ]
        out[r.transaction_id] = online_features(r.tx_datetime, r.cents / 100, customer, terminal, delay)
    return out


# Times on and around window edges: whole days apart, a second or a microsecond off, night hours.
_SECONDS = st.sampled_from([0, 1, 6 * 3600 + 3599, 7 * 3600, 12 * 3600, 86399])
_MICROS = st.sampled_from([0, 1, 999_999])


@st.composite
def histories(draw, max_rows: int = 24) -> list[Tx]:
    n = draw(st.integers(1, max_rows))
    rows = []
    for i in range(n):
        ts = BASE + timedelta(days=draw(st.integers(0, 40)), seconds=draw(_SECONDS), microseconds=draw(_MICROS))
        # A report becomes known after its transaction: at the end of a day (as files land) or, to
        # probe the window edges, a second or an hour past a whole number of days.
        midnight = datetime.combine(ts.date(), datetime.min.time(), tzinfo=UTC)
        known = draw(
            st.one_of(
                st.none(),
                st.builds(lambda d, m=midnight: m + timedelta(days=d), st.integers(1, 12)),
                st.builds(
                    lambda d, s, ts=ts: ts + timedelta(days=d, seconds=s),
                    st.integers(0, 12),
                    st.sampled_from([1, 3600]),
                ),
            )
        )
        rows.append(
            Tx(
                f"tx{i:03d}",
                ts,
                draw(st.sampled_from(["c1", "c2", "c3"])),
                draw(st.sampled_from(["t1", "t2"])),
                draw(st.integers(0, 300_000)),
                known,
            )
        )
    return rows


def tagged(k: int, rows: list[Tx]) -> list[Tx]:
    """History ``k`` with its transactions, customers and terminals renamed apart from every other history's."""
    return [
        r._replace(
            transaction_id=f"h{k}.{r.transaction_id}",
            customer_id=f"h{k}.{r.customer_id}",
            terminal_id=f"h{k}.{r.terminal_id}",
        )
        for r in rows
    ]


# Each example is several independent histories (ids renamed apart) computed in one Spark job: every
# feature is a window or join per customer, terminal or transaction, so histories cannot see each
# other, and a Spark job per history would cost a second of planning for a few dozen rows.


@hsettings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(histories(), min_size=1, max_size=6))
def test_spark_features_equal_reference_and_serving_exactly(spark, batch):
    batch = [tagged(k, rows) for k, rows in enumerate(batch)]
    computed = spark_features(spark, [r for rows in batch for r in rows])
    for rows in batch:
        expected = reference_features(rows)
        assert {r.transaction_id: computed[r.transaction_id] for r in rows} == expected
        assert serving_features(rows) == expected


@st.composite
def later_changes(draw) -> tuple[list[Tx], list[Tx], datetime]:
    """A history, the same history as it may look later (after a cutoff), and the cutoff."""
    rows, later = draw(histories(max_rows=16)), draw(histories(max_rows=6))
    cutoff = draw(st.sampled_from(sorted(r.tx_datetime for r in rows)))
    changed = []
    for r in rows:
        if r.tx_datetime > cutoff:  # a later transaction: anything about it may change
            r = r._replace(cents=draw(st.integers(0, 300_000)), customer_id=draw(st.sampled_from(["c1", "c2"])))
        # any report that becomes known after the cutoff may appear, move or vanish
        if draw(st.booleans()) and (r.known_at is None or r.known_at > cutoff):
            late = cutoff + timedelta(microseconds=1, days=draw(st.integers(0, 5)))
            r = r._replace(known_at=draw(st.sampled_from([None, max(late, r.tx_datetime + timedelta(seconds=1))])))
        changed.append(r)
    # New transactions after the cutoff, on the same customers and terminals.
    for i, x in enumerate(later):
        changed.append(
            x._replace(
                transaction_id=f"late{i}", tx_datetime=cutoff + (x.tx_datetime - BASE) + timedelta(microseconds=1)
            )
        )
    return rows, changed, cutoff


@hsettings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(later_changes(), min_size=1, max_size=4))
def test_later_transactions_and_reports_never_change_earlier_features(spark, batch):
    batch = [(tagged(k, rows), tagged(k, changed), cutoff) for k, (rows, changed, cutoff) in enumerate(batch)]
    before = spark_features(spark, [r for rows, _, _ in batch for r in rows])
    after = spark_features(spark, [r for _, changed, _ in batch for r in changed])
    for rows, _, cutoff in batch:
        for r in rows:
            if r.tx_datetime <= cutoff:
                assert after[r.transaction_id] == before[r.transaction_id], r.transaction_id


# --------------------------------------------------------------------------------------------
# the job on the marts


def test_build_features_matches_reference_and_backfill_rewrites_one_date(marts, settings, spark):
    from jobs.features.build import FEATURES_TABLE, build_features

    days = marts
    last, previous = days[-1], days[-2]
    first_summary = build_features(previous, settings=settings)
    summary = build_features(last, settings=settings)
    accepted = spark.sql(f"SELECT count(*) AS n FROM bronze.transactions WHERE batch_date = DATE'{last}'").collect()[0][
        "n"
    ]
    assert summary["rows"] == accepted > 0 and first_summary["rows"] > 0

    history_rows = [
        Tx(
            r["transaction_id"],
            r["tx_datetime"],
            r["customer_id"],
            r["terminal_id"],
            round(r["tx_amount"] * 100),
            r["report_known_at"],
        )
        for r in spark.sql(
            f"SELECT * FROM marts.fct_transactions WHERE tx_datetime > TIMESTAMP'{days[0] - timedelta(days=40)}' "
            f"AND tx_datetime < TIMESTAMP'{last + timedelta(days=1)}'"
        ).collect()
    ]
    targets = [r for r in history_rows if r.tx_datetime.date() == last]
    expected = reference_features(history_rows, settings.features.label_delay_days, targets)
    stored = spark.sql(f"SELECT * FROM {FEATURES_TABLE} WHERE batch_date = DATE'{last}'").collect()
    assert len(stored) == accepted
    for row in stored:
        assert {k: row[k] for k in FEATURE_NAMES} == expected[row["transaction_id"]], row["transaction_id"]
    assert {row["feature_set_version"] for row in stored} == {summary["feature_set_version"]}

    # A backfill of the previous day rewrites that partition only.
    stamps = lambda day: {
        r["computed_at"]
        for r in spark.sql(f"SELECT computed_at FROM {FEATURES_TABLE} WHERE batch_date = DATE'{day}'").collect()
    }
    last_before, previous_before = stamps(last), stamps(previous)
    build_features(previous, settings=settings, write_state=False)
    assert stamps(last) == last_before
    assert stamps(previous) != previous_before
    count = spark.sql(f"SELECT count(*) AS n FROM {FEATURES_TABLE} WHERE batch_date = DATE'{previous}'").collect()[0][
        "n"
    ]
    assert count == first_summary["rows"]  # replaced, not appended

    # The online state holds each entity's recent events, as of the end of the day.
    state = spark.sql(f"SELECT * FROM features.customer_state WHERE state_date = DATE'{last}'").collect()
    end = datetime.combine(last + timedelta(days=1), datetime.min.time())
    assert state and all(
        e["tx_datetime"] < end and e["tx_datetime"] >= end - timedelta(days=30) for row in state for e in row["events"]
    )
    n_events = sum(len(row["events"]) for row in state)
    in_window = spark.sql(
        f"SELECT count(*) AS n FROM marts.fct_transactions WHERE tx_datetime >= TIMESTAMP'{end - timedelta(days=30)}' AND tx_datetime < TIMESTAMP'{end}'"
    ).collect()[0]["n"]
    assert n_events == in_window


def test_feature_validation_passes_the_job_output_and_names_what_breaks(marts, settings, spark):
    from jobs.features.build import FEATURES_TABLE
    from jobs.features.validate import read_validation, validate_feature_partition, validate_frame

    day = marts[-1]  # its features as the history's backfill wrote them: the job's output
    summary = validate_feature_partition(day, settings=settings)
    assert summary["success"]
    recorded = read_validation(settings, day)  # monitoring's data-quality check reads the outcome
    assert (recorded["failed"], recorded["rows"], recorded["expectations"]) == (
        0,
        summary["rows"],
        summary["expectations"],
    )

    frame = spark.sql(f"SELECT * FROM {FEATURES_TABLE} WHERE batch_date = DATE'{day}'").toPandas()
    broken = frame.copy()
    broken.loc[0, "terminal_risk_7d"] = 1.5
    broken.loc[1, "customer_nb_tx_1d"] = None
    result = validate_frame(broken, expected_rows=len(frame) + 1)
    failed = {rule for rule, outcome in result["rules"].items() if not outcome["success"]}
    assert failed == {"terminal_risk_7d_in_range", "customer_nb_tx_1d_not_null", "rows_equal_accepted_transactions"}


def test_feature_costs_time_each_feature_on_a_real_day_and_a_remeasure_replaces_the_day(marts, settings, spark):
    from jobs.features.cost import COSTS_TABLE, SPEC, ensure_recent, latest_costs, measure
    from jobs.features.registry import FEATURE_SET_VERSION
    from jobs.platform import delta

    day = marts[-1]
    first = measure(day, settings)
    assert first["day"] == str(day) and first["rows"] > 0 and set(first["features"]) == set(FEATURE_NAMES)
    assert all(f["seconds_alone"] > 0 for f in first["features"].values())
    attributed = sum(f["attributed_seconds"] for f in first["features"].values())
    assert abs(attributed - first["seconds_all_features"]) < 1e-6  # the whole set's time, split by the alone times
    assert ensure_recent(day, settings) == first  # measured less than a week ago: not again
    second = measure(day, settings)
    assert latest_costs(settings) == second and second["measured_at"] > first["measured_at"]
    rows = delta.read(settings, SPEC).to_pandas()
    assert len(rows) == len(FEATURE_NAMES) and set(rows["feature_set_version"]) == {FEATURE_SET_VERSION}, COSTS_TABLE
