"""Transaction simulator, after the credit-card fraud-detection handbook (Le Borgne et al.).

Customers and terminals sit uniformly on a 100x100 grid; a customer uses the terminals within
``radius`` of it. Each customer has a mean amount ~ U(5, 100) (std = mean / 2) and a daily count
~ Poisson(U(0, 4)); the time of day is N(12:00, 20000 s), kept inside the day. Fraud scenarios:

1. every amount above 220 is fraud;
2. each day 2 random terminals are compromised for 28 days: all their transactions are fraud;
3. each day 3 random customers are compromised for 14 days: a third of their transactions get
   5x the amount and are fraud.

Every random draw of a day comes from a generator seeded by ``(seed, day, stream)``, so a day's
files are a function of the arguments and the day alone: the same arguments give byte-identical
files, and two adjacent ranges join seamlessly (fraud reports of a day include frauds of the seven
days before it, regenerated when they lie before ``--start-date``).

Writes the landing contract of ``ARCHITECTURE.md``: ``transactions/<date>.csv``,
``fraud_reports/<date>.csv`` (each fraud reported 1 to 7 calendar days after its transaction),
``customers.csv`` and ``terminals.csv``.

    python -m jobs.data.simulate --start-date 2026-01-01 --days 30 --customers 5000 --terminals 10000 \\
        --seed 42 --out data/landing [--bad-rows-rate 0.01] [--drift amount_shift --drift-start 2026-01-20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

TX_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
REPORT_COLUMNS = ["transaction_id", "reported_at"]
SECONDS_PER_DAY = 86_400
MAX_REPORT_DELAY_DAYS = 7
TERMINAL_COMPROMISE_DAYS = 28
CUSTOMER_COMPROMISE_DAYS = 14
DRIFT_SCENARIOS = ("new_fraud_pattern", "amount_shift", "new_terminals")
CARD_TESTING_SHARE = 0.08  # new_fraud_pattern: share of the cards probed each day
SEGMENTS = np.array(["budget", "standard", "premium"])
MERCHANT_CATEGORIES = np.array(
    ["grocery", "fuel", "restaurant", "electronics", "travel", "fashion", "online_services", "pharmacy"]
)

# Streams keep the draws of one purpose independent of every other purpose.
_STREAM_POPULATION, _STREAM_TX, _STREAM_TERMINALS, _STREAM_CUSTOMERS, _STREAM_BAD, _STREAM_DRIFT = range(6)

# Injected malformed rows: kind -> the quarantine reason ingestion must give it.
BAD_ROW_KINDS: dict[str, str] = {
    "missing_column": "wrong_field_count",
    "missing_amount": "tx_amount_not_null",
    "non_numeric_amount": "tx_amount_is_numeric",
    "negative_amount": "tx_amount_in_range",
    "absurd_amount": "tx_amount_in_range",
    "unparsable_timestamp": "tx_datetime_parsable",
    "timestamp_outside_day": "tx_datetime_in_batch_day",
    "duplicate_id": "transaction_id_unique_in_batch",
    "empty_id": "transaction_id_not_null",
    "broken_quoting": "broken_quoting",
    "blank_line": "blank_line",
    "invalid_utf8": "invalid_utf8",
}


@dataclass(frozen=True)
class SimulationConfig:
    start_date: date
    days: int
    n_customers: int = 5000
    n_terminals: int = 10000
    seed: int = 42
    radius: float = 5.0
    bad_rows_rate: float = 0.0
    drift: str | None = None
    drift_start: date | None = None
    max_report_delay_days: int = MAX_REPORT_DELAY_DAYS  # frauds are reported 1..this many days later

    def __post_init__(self) -> None:
        if self.days < 1 or self.n_customers < 1 or self.n_terminals < 1:
            raise ValueError("days, customers and terminals must be positive")
        if not 0.0 <= self.bad_rows_rate < 1.0:
            raise ValueError("bad_rows_rate must be in [0, 1)")
        if not 1 <= self.max_report_delay_days <= MAX_REPORT_DELAY_DAYS:
            raise ValueError(f"max_report_delay_days must be in 1..{MAX_REPORT_DELAY_DAYS}")
        if self.drift is not None:
            if self.drift not in DRIFT_SCENARIOS:
                raise ValueError(f"unknown drift scenario {self.drift!r}; choose from {', '.join(DRIFT_SCENARIOS)}")
            if self.drift_start is None:
                raise ValueError("--drift needs --drift-start")

    def drift_active(self, scenario: str, day: date) -> bool:
        return self.drift == scenario and self.drift_start is not None and day >= self.drift_start

    @property
    def n_new_terminals(self) -> int:
        """Terminals that appear at ``drift_start`` under the ``new_terminals`` scenario (+50%)."""
        return self.n_terminals // 2 if self.drift == "new_terminals" else 0


def _rng(cfg: SimulationConfig, day: date | None, stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, day.toordinal() if day else 0, stream])


def _region(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ns = np.where(y >= 50, "north", "south")
    ew = np.where(x >= 50, "east", "west")
    return np.char.add(np.char.add(ns, "-"), ew)


class Population:
    """Customers, terminals and which terminals each customer uses (CSR lists)."""

    def __init__(self, cfg: SimulationConfig):
        rng = _rng(cfg, None, _STREAM_POPULATION)
        n_c, n_t = cfg.n_customers, cfg.n_terminals + cfg.n_new_terminals
        self.cust_xy = rng.uniform(0, 100, size=(n_c, 2))
        self.mean_amount = rng.uniform(5, 100, size=n_c)
        self.std_amount = self.mean_amount / 2
        self.mean_nb_tx = rng.uniform(0, 4, size=n_c)
        self.segment = SEGMENTS[np.digitize(self.mean_amount, [35, 70])]
        self.term_xy = rng.uniform(0, 100, size=(n_t, 2))
        self.merchant_category = MERCHANT_CATEGORIES[rng.integers(0, len(MERCHANT_CATEGORIES), size=n_t)]
        self.n_original_terminals = cfg.n_terminals
        pairs = cKDTree(self.cust_xy).sparse_distance_matrix(cKDTree(self.term_xy), cfg.radius, output_type="ndarray")
        pairs = pairs[np.lexsort((pairs["j"], pairs["i"]))]
        # Two lists: terminals that exist from the start, and all terminals (after a new_terminals drift).
        self.available_all = self._csr(pairs["i"], pairs["j"], n_c)
        original = pairs["j"] < cfg.n_terminals
        self.available_orig = self._csr(pairs["i"][original], pairs["j"][original], n_c)
        self.cfg = cfg

    @staticmethod
    def _csr(cust: np.ndarray, term: np.ndarray, n_customers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offsets, counts, terminals) of each customer's usable terminals, from sorted pairs."""
        counts = np.bincount(cust, minlength=n_customers).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return offsets, counts, term.astype(np.int64)

    def available(self, day: date):
        return self.available_all if self.cfg.drift_active("new_terminals", day) else self.available_orig

    def customers_frame(self) -> pd.DataFrame:
        x, y = self.cust_xy[:, 0], self.cust_xy[:, 1]
        return pd.DataFrame(
            {
                "customer_id": np.arange(len(x)),
                "x_location": x.round(4),
                "y_location": y.round(4),
                "region": _region(x, y),
                "segment": self.segment,
            }
        )

    def terminals_frame(self) -> pd.DataFrame:
        x, y = self.term_xy[:, 0], self.term_xy[:, 1]
        first_active = np.full(len(x), "", dtype=object)
        if self.cfg.n_new_terminals:
            first_active[self.n_original_terminals :] = self.cfg.drift_start.isoformat()
        return pd.DataFrame(
            {
                "terminal_id": np.arange(len(x)),
                "x_location": x.round(4),
                "y_location": y.round(4),
                "region": _region(x, y),
                "merchant_category": self.merchant_category,
                "first_active_date": first_active,
            }
        )


def _compromised(cfg: SimulationConfig, day: date, stream: int, per_day: int, duration: int, population) -> np.ndarray:
    """Entities compromised on ``day``: those drawn on any of the ``duration`` days up to ``day``.

    ``population(draw_day)`` is the number of entities that exist on the day of each draw, so a
    draw never changes once made (new terminals only join the draws from their first day).
    """
    drawn = []
    for k in range(duration):
        draw_day = day - timedelta(days=k)
        size = population(draw_day)
        drawn.append(_rng(cfg, draw_day, stream).choice(size, size=min(per_day, size), replace=False))
    return np.unique(np.concatenate(drawn))


def card_testing_wave(cfg: SimulationConfig, day: date, n_terminals: int):
    """The ``new_fraud_pattern`` drift: a card-testing ring probing stolen cards.

    Each day ``CARD_TESTING_SHARE`` of the cards get 4 to 8 payments of 0.50 to 3.00 between midnight
    and 6 am, at terminals drawn at random. A wave the size of a real card-testing attack: it adds
    about a quarter to the day's transactions, so the inputs move (amounts, night share, the cards'
    daily counts), and a model trained before it has never seen such frauds.
    Returns customer ids, seconds of the day, terminal ids and amounts.
    """
    rng = _rng(cfg, day, _STREAM_DRIFT)
    n_cards = max(1, round(CARD_TESTING_SHARE * cfg.n_customers))
    cards = rng.choice(cfg.n_customers, size=min(n_cards, cfg.n_customers), replace=False)
    cust = np.repeat(cards, rng.integers(4, 9, size=len(cards)))
    seconds = rng.integers(0, 6 * 3600, size=len(cust))
    terminal = rng.integers(0, n_terminals, size=len(cust))
    amount = np.round(rng.uniform(0.5, 3.0, size=len(cust)), 2)
    return cust, seconds, terminal, amount


def simulate_day(cfg: SimulationConfig, pop: Population, day: date) -> pd.DataFrame:
    """All transactions of ``day``, sorted by time, with ground truth and the report schedule.

    Columns: the landing columns plus ``tx_fraud``, ``tx_fraud_scenario`` (0 genuine, 1-3 as in the
    module docstring, 4 the ``new_fraud_pattern`` drift), ``report_delay_days`` and
    ``report_seconds`` (when a fraud will be reported).
    """
    rng = _rng(cfg, day, _STREAM_TX)
    offsets, counts, flat = pop.available(day)
    n_tx = rng.poisson(pop.mean_nb_tx)
    cust = np.repeat(np.arange(cfg.n_customers), n_tx)
    seconds = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=len(cust))
    amount = rng.normal(pop.mean_amount[cust], pop.std_amount[cust])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * pop.mean_amount[cust[negative]])
    pick = rng.random(len(cust))
    keep = (seconds > 0) & (seconds < SECONDS_PER_DAY) & (counts[cust] > 0)
    cust, seconds, amount, pick = cust[keep], seconds[keep].astype(np.int64), amount[keep], pick[keep]
    terminal = flat[offsets[cust] + (pick * counts[cust]).astype(np.int64)]
    if cfg.drift_active("amount_shift", day):
        amount = amount * 1.6
    amount = np.round(amount, 2)

    scenario = np.zeros(len(cust), dtype=np.int8)
    scenario[amount > 220] = 1

    def terminals_on(d: date) -> int:
        return cfg.n_terminals + (cfg.n_new_terminals if cfg.drift_active("new_terminals", d) else 0)

    n_terms = terminals_on(day)
    bad_terms = _compromised(cfg, day, _STREAM_TERMINALS, 2, TERMINAL_COMPROMISE_DAYS, terminals_on)
    scenario[np.isin(terminal, bad_terms)] = 2
    bad_custs = _compromised(cfg, day, _STREAM_CUSTOMERS, 3, CUSTOMER_COMPROMISE_DAYS, lambda d: cfg.n_customers)
    third = np.isin(cust, bad_custs) & (rng.random(len(cust)) < 1 / 3)
    amount[third] = np.round(amount[third] * 5, 2)
    scenario[third] = 3

    if cfg.drift_active("new_fraud_pattern", day):
        w_cust, w_seconds, w_terminal, w_amount = card_testing_wave(cfg, day, n_terms)
        cust = np.concatenate([cust, w_cust])
        seconds = np.concatenate([seconds, w_seconds])
        terminal = np.concatenate([terminal, w_terminal])
        amount = np.concatenate([amount, w_amount])
        scenario = np.concatenate([scenario, np.full(len(w_cust), 4, dtype=np.int8)])

    order = np.lexsort((cust, seconds))
    cust, seconds, terminal, amount, scenario = (
        cust[order],
        seconds[order],
        terminal[order],
        amount[order],
        scenario[order],
    )
    n = len(cust)
    day_key = int(day.strftime("%Y%m%d"))
    report_rng = _rng(cfg, day, _STREAM_TX + 100)
    frame = pd.DataFrame(
        {
            "transaction_id": day_key * 100_000_000 + np.arange(1, n + 1, dtype=np.int64),
            "tx_datetime": pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s"),
            "customer_id": cust,
            "terminal_id": terminal,
            "tx_amount": amount,
            "tx_fraud": (scenario > 0).astype(np.int8),
            "tx_fraud_scenario": scenario,
            "report_delay_days": report_rng.integers(1, cfg.max_report_delay_days + 1, size=n),
            "report_seconds": report_rng.integers(0, SECONDS_PER_DAY, size=n),
        }
    )
    return frame


def fraud_reports_for(day: date, history: dict[date, pd.DataFrame]) -> pd.DataFrame:
    """Reports filed on ``day``: frauds of the previous seven days whose delay lands on ``day``."""
    parts = []
    for k in range(1, MAX_REPORT_DELAY_DAYS + 1):
        tx = history[day - timedelta(days=k)]
        hit = tx[(tx["tx_fraud"] == 1) & (tx["report_delay_days"] == k)]
        parts.append(
            pd.DataFrame(
                {
                    "transaction_id": hit["transaction_id"].to_numpy(),
                    "reported_at": pd.Timestamp(day) + pd.to_timedelta(hit["report_seconds"].to_numpy(), unit="s"),
                }
            )
        )
    reports = pd.concat(parts, ignore_index=True)
    return reports.sort_values(["reported_at", "transaction_id"], kind="mergesort").reset_index(drop=True)


def _csv_lines(frame: pd.DataFrame, columns: list[str]) -> list[bytes]:
    text = frame.to_csv(
        columns=columns, index=False, lineterminator="\n", float_format="%.2f", date_format="%Y-%m-%d %H:%M:%S"
    )
    return text.encode("utf-8").split(b"\n")[:-1]


def bad_line(kind: str, day: date, source_row: bytes, fresh_id: str) -> bytes:
    """A malformed transactions line of ``kind`` (see :data:`BAD_ROW_KINDS`), derived from a good row.

    ``duplicate_id`` repeats ``source_row``'s id; every other kind carries ``fresh_id``.
    """
    tid, ts, cust, term, amt = source_row.decode().split(",")[:5]
    if kind == "invalid_utf8":
        return f"{fresh_id},{ts},{cust},".encode() + b"\xff\xfe" + f"{term},{amt}".encode()
    lines = {
        "missing_column": f"{fresh_id},{ts},{cust},{term}",
        "missing_amount": f"{fresh_id},{ts},{cust},{term},",
        "non_numeric_amount": f"{fresh_id},{ts},{cust},{term},12.5EUR",
        "negative_amount": f"{fresh_id},{ts},{cust},{term},-{max(float(amt), 1.0):.2f}",
        "absurd_amount": f"{fresh_id},{ts},{cust},{term},98765432.10",
        "unparsable_timestamp": f"{fresh_id},{day.isoformat()} 25:61:99,{cust},{term},{amt}",
        "timestamp_outside_day": f"{fresh_id},{(day - timedelta(days=3)).isoformat()}{ts[10:]},{cust},{term},{amt}",
        "duplicate_id": f"{tid},{ts},{cust},{term},{amt}",
        "empty_id": f",{ts},{cust},{term},{amt}",
        "broken_quoting": f'{fresh_id},"{ts},{cust},{term},{amt}',
        "blank_line": "",
    }
    if kind not in lines:
        raise ValueError(f"unknown bad-row kind {kind!r}; choose from {', '.join(BAD_ROW_KINDS)}")
    return lines[kind].encode()


def inject_bad_rows(
    lines: list[bytes], day: date, rate: float, rng: np.random.Generator
) -> tuple[list[bytes], dict[str, int]]:
    """Insert ``rate * rows`` malformed lines after the header, cycling through :data:`BAD_ROW_KINDS`.

    Bad rows are extra lines (the clean transactions stay intact) with fresh ids, except
    ``duplicate_id``, which repeats the id of a row placed before it.
    """
    header, rows = lines[0], lines[1:]
    n_bad = int(round(rate * len(rows)))
    if n_bad == 0 or not rows:
        return lines, {}
    kinds = list(BAD_ROW_KINDS)
    chosen = [kinds[i % len(kinds)] for i in rng.permutation(n_bad)]
    positions = np.sort(rng.integers(1, len(rows) + 1, size=n_bad))  # insert before rows[pos]; never at 0
    day_key = int(day.strftime("%Y%m%d"))
    out: list[bytes] = [header]
    counts: dict[str, int] = {}
    prev = 0
    for i, (kind, pos) in enumerate(zip(chosen, positions, strict=True)):
        out.extend(rows[prev:pos])
        prev = pos
        source_row = rows[int(rng.integers(0, pos))]  # a row already written
        out.append(bad_line(kind, day, source_row, str(day_key * 100_000_000 + 90_000_000 + i)))
        counts[kind] = counts.get(kind, 0) + 1
    out.extend(rows[prev:])
    return out, counts


def _write(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(b"\n".join(lines) + b"\n")
    tmp.replace(path)  # readers (the DAG's sensor) never see a half-written file


def simulate(cfg: SimulationConfig, out: Path) -> dict:
    """Write the landing files of every simulated day under ``out``; return a summary."""
    started = time.perf_counter()
    pop = Population(cfg)
    _write(out / "customers.csv", _csv_lines(pop.customers_frame(), list(pop.customers_frame().columns)))
    _write(out / "terminals.csv", _csv_lines(pop.terminals_frame(), list(pop.terminals_frame().columns)))
    days = [cfg.start_date + timedelta(days=i) for i in range(cfg.days)]
    history: dict[date, pd.DataFrame] = {}
    summary = {"transactions": 0, "frauds": 0, "reports": 0, "bad_rows": {}, "by_scenario": {}}
    for d in [cfg.start_date - timedelta(days=k) for k in range(MAX_REPORT_DELAY_DAYS, 0, -1)] + days:
        history[d] = simulate_day(cfg, pop, d)
    for d in days:
        tx = history[d]
        lines = _csv_lines(tx, TX_COLUMNS)
        if cfg.bad_rows_rate:
            lines, bad = inject_bad_rows(lines, d, cfg.bad_rows_rate, _rng(cfg, d, _STREAM_BAD))
            for k, v in bad.items():
                summary["bad_rows"][k] = summary["bad_rows"].get(k, 0) + v
        _write(out / "transactions" / f"{d.isoformat()}.csv", lines)
        reports = fraud_reports_for(d, history)
        _write(out / "fraud_reports" / f"{d.isoformat()}.csv", _csv_lines(reports, REPORT_COLUMNS))
        summary["transactions"] += len(tx)
        summary["frauds"] += int(tx["tx_fraud"].sum())
        summary["reports"] += len(reports)
        for s, c in tx["tx_fraud_scenario"].value_counts().items():
            if s:
                summary["by_scenario"][str(s)] = summary["by_scenario"].get(str(s), 0) + int(c)
        history.pop(d - timedelta(days=MAX_REPORT_DELAY_DAYS), None)
    elapsed = time.perf_counter() - started
    summary.update(
        days=cfg.days,
        fraud_rate=round(summary["frauds"] / max(1, summary["transactions"]), 5),
        seconds=round(elapsed, 3),
        out=str(out),
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.data.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-date", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, required=True, help="number of days to simulate")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--radius", type=float, default=5.0, help="customer-terminal radius on the 100x100 grid")
    parser.add_argument("--out", type=Path, help="landing directory (default: PIPELINE_DATA_DIR/landing)")
    parser.add_argument("--bad-rows-rate", type=float, default=0.0, help="share of malformed rows to inject")
    parser.add_argument("--drift", choices=DRIFT_SCENARIOS, help="drift scenario starting at --drift-start")
    parser.add_argument("--drift-start", type=date.fromisoformat)
    parser.add_argument(
        "--max-report-delay-days",
        type=int,
        default=MAX_REPORT_DELAY_DAYS,
        help=f"frauds are reported 1..N days after the transaction (N <= {MAX_REPORT_DELAY_DAYS})",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        from jobs.config import get_settings

        args.out = get_settings().storage.landing_dir
    try:
        cfg = SimulationConfig(
            start_date=args.start_date,
            days=args.days,
            n_customers=args.customers,
            n_terminals=args.terminals,
            seed=args.seed,
            radius=args.radius,
            bad_rows_rate=args.bad_rows_rate,
            drift=args.drift,
            drift_start=args.drift_start,
            max_report_delay_days=args.max_report_delay_days,
        )
    except ValueError as exc:
        parser.error(str(exc))
    summary = simulate(cfg, args.out)
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
