"""The training set: pinned feature and label versions, out-of-time windows, prequential folds.

:func:`build_training_set` reads ``features.transaction_features`` joined with
``marts.fct_transactions`` (and the customer/terminal dimensions, for slices) at pinned Delta
versions, recorded in the set's manifest, and stores the rows of the whole span as Parquet.
:func:`split` then cuts it, in memory and deterministically, following a :class:`Plan`:

    fold k train | gap | fold k valid          (shifted back test_days per fold)
                 ...           train window    | gap | test window

* The model is trained at the **cutoff** = the first instant of the test window. A training row
  carries the label known at that instant: fraud if a report arrived before it, genuine if the
  maturity window has passed without one, otherwise it is dropped (pending). With a gap at least
  as long as the label maturity, every training label is mature; nothing after the cutoff leaks in.
* Test rows carry the label known at ``label_as_of`` (the end of the data); the default test window
  ends ``label_maturity_days`` before it, so every test label is mature.
* Test and validation rows of cards already known to be compromised are left out: a fraud of the
  card made since the start of the training window and reported before the row's day. The bank
  has blocked those cards; the fraud-detection handbook's protocol, whose published numbers we
  compare with, does the same (with a fixed delay where we use the actual report times).
* Fold k trains on its own window with labels known at its own cutoff, and validates on the week
  that ends ``k * test_days`` before the main training window ends, with labels known at the main
  cutoff (what the tuner can know when it runs).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.config import Settings, get_settings
from jobs.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from jobs.platform import delta

log = logging.getLogger(__name__)

FEATURES_TABLE = "features.transaction_features"
FACT_TABLE = "marts.fct_transactions"
CUSTOMERS_TABLE = "marts.dim_customers"
TERMINALS_TABLE = "marts.dim_terminals"
PINNED_TABLES = (FEATURES_TABLE, FACT_TABLE, CUSTOMERS_TABLE, TERMINALS_TABLE)
SLICE_COLUMNS = ("segment", "region", "merchant_category")
FRAME_FILE = "frame.parquet"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Window:
    """Whole days ``start``..``end``, both inclusive."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def mask(self, tx_date: pd.Series) -> pd.Series:
        return (tx_date >= self.start) & (tx_date <= self.end)


@dataclass(frozen=True)
class Split:
    """One train/evaluate pair; training labels are those known at ``cutoff``."""

    name: str
    train: Window
    evaluate: Window

    @property
    def cutoff(self) -> datetime:
        return datetime.combine(self.evaluate.start, datetime.min.time())


@dataclass(frozen=True)
class Plan:
    """The main split (train | gap | test), the tuning folds, and when the test labels are read."""

    main: Split
    folds: tuple[Split, ...]
    label_as_of: datetime
    gap_days: int

    @property
    def first_day(self) -> date:
        return min([self.main.train.start, *(f.train.start for f in self.folds)])

    @property
    def last_day(self) -> date:
        return self.main.evaluate.end

    def describe(self) -> dict:
        win = lambda w: f"{w.start}..{w.end}"
        return {
            "train": win(self.main.train),
            "gap_days": self.gap_days,
            "test": win(self.main.evaluate),
            "cutoff": self.main.cutoff.isoformat(),
            "label_as_of": self.label_as_of.isoformat(),
            "folds": [{"train": win(f.train), "valid": win(f.evaluate)} for f in self.folds],
        }

    def to_dict(self) -> dict:
        return {
            "main": _split_dict(self.main),
            "folds": [_split_dict(f) for f in self.folds],
            "label_as_of": self.label_as_of.isoformat(),
            "gap_days": self.gap_days,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        return cls(
            main=_split_from(d["main"]),
            folds=tuple(_split_from(f) for f in d["folds"]),
            label_as_of=datetime.fromisoformat(d["label_as_of"]),
            gap_days=int(d["gap_days"]),
        )


def _split_dict(s: Split) -> dict:
    return {
        "name": s.name,
        "train": [str(s.train.start), str(s.train.end)],
        "evaluate": [str(s.evaluate.start), str(s.evaluate.end)],
    }


def _split_from(d: dict) -> Split:
    w = lambda pair: Window(date.fromisoformat(pair[0]), date.fromisoformat(pair[1]))
    return Split(d["name"], w(d["train"]), w(d["evaluate"]))


def plan_windows(
    last_test_day: date,
    train_days: int,
    gap_days: int,
    test_days: int,
    n_folds: int,
    label_as_of: datetime | None = None,
) -> Plan:
    """The windows of one training whose test window ends on ``last_test_day``."""
    if min(train_days, test_days) < 1 or gap_days < 0 or n_folds < 0:
        raise ValueError(
            f"windows must be positive: train={train_days} gap={gap_days} test={test_days} folds={n_folds}"
        )
    d = timedelta(days=1)
    test = Window(last_test_day - (test_days - 1) * d, last_test_day)
    train = Window(test.start - (gap_days + train_days) * d, test.start - (gap_days + 1) * d)
    folds = []
    for k in range(n_folds):
        valid = Window(train.end - ((k + 1) * test_days - 1) * d, train.end - k * test_days * d)
        fold_train = Window(valid.start - (gap_days + train_days) * d, valid.start - (gap_days + 1) * d)
        folds.append(Split(f"fold{k}", fold_train, valid))
    as_of = label_as_of or datetime.combine(last_test_day + d, datetime.min.time())
    return Plan(Split("main", train, test), tuple(folds), as_of, gap_days)


def label_at(frame: pd.DataFrame, cutoff: datetime, maturity_days: int) -> np.ndarray:
    """The label of each row as known at ``cutoff``: 1.0 fraud, 0.0 genuine, NaN not known yet."""
    reported = frame["reported_at"].notna().to_numpy() & (frame["reported_at"] < cutoff).to_numpy()
    mature = (frame["tx_datetime"] + pd.Timedelta(days=maturity_days) <= cutoff).to_numpy()
    return np.where(reported, 1.0, np.where(mature, 0.0, np.nan))


def known_compromised_since(frame: pd.DataFrame, since: date) -> pd.Series:
    """Per card: the first report of a fraud made on or after ``since`` (NaT if none)."""
    frauds = frame[frame["reported_at"].notna() & (frame["tx_date"] >= since)]
    first = frauds.groupby("customer_id")["reported_at"].min()
    return frame["customer_id"].map(first)


def _labelled(
    frame: pd.DataFrame, window: Window, cutoff: datetime, maturity_days: int, known_since: date | None
) -> pd.DataFrame:
    rows = frame[window.mask(frame["tx_date"])].copy()
    if known_since is not None:
        rows["card_first_reported_at"] = known_compromised_since(frame, known_since)[rows.index]
        known = rows["card_first_reported_at"].notna() & (
            rows["card_first_reported_at"] < pd.to_datetime(rows["tx_date"])
        )
        rows = rows[~known]
    rows["label"] = label_at(rows, cutoff, maturity_days)
    rows = rows[rows["label"].notna()]
    rows["label"] = rows["label"].astype("int8")
    return rows.sort_values(["tx_datetime", "transaction_id"], kind="mergesort").reset_index(drop=True)


@dataclass
class SplitData:
    train: pd.DataFrame
    evaluate: pd.DataFrame


def split(frame: pd.DataFrame, plan: Plan, maturity_days: int) -> tuple[SplitData, list[SplitData]]:
    """Cut ``frame`` (from :func:`build_training_set`) into the main split and the tuning folds."""
    main = SplitData(
        _labelled(frame, plan.main.train, plan.main.cutoff, maturity_days, known_since=None),
        _labelled(frame, plan.main.evaluate, plan.label_as_of, maturity_days, known_since=plan.main.train.start),
    )
    folds = [
        SplitData(
            _labelled(frame, f.train, f.cutoff, maturity_days, known_since=None),
            _labelled(frame, f.evaluate, plan.main.cutoff, maturity_days, known_since=f.train.start),
        )
        for f in plan.folds
    ]
    return main, folds


# ------------------------------------------------------------------------------------------
# reading the lakehouse


def _read_pinned(settings: Settings, table: str, version: int, columns: list[str], filters=None) -> pd.DataFrame:
    """``columns`` of ``table`` at Delta ``version`` (time travel), read with delta-rs (no JVM).

    Timestamps come back naive UTC and dates as ``datetime.date``, as Spark's ``toPandas`` gave them.
    """
    from deltalake import DeltaTable

    frame = (
        DeltaTable(str(delta.path(settings, table)), version=version)
        .to_pyarrow_table(columns=columns, filters=filters)
        .to_pandas()
    )
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.DatetimeTZDtype):
            frame[c] = frame[c].dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    return frame


def current_versions(settings: Settings) -> dict[str, int]:
    """The latest Delta version of every table a training set reads (what it pins)."""
    versions = {}
    for table in PINNED_TABLES:
        v = delta.version(settings, table)
        if v is None:
            raise ValueError(f"{table} does not exist: run data_pipeline (or `make demo`) first")
        versions[table] = v
    return versions


def load_frame(settings: Settings, first_day: date, last_day: date, versions: dict[str, int]) -> pd.DataFrame:
    """Rows with ``tx_date`` in ``first_day``..``last_day``: features, times, report, slice columns."""
    fct = _read_pinned(
        settings,
        FACT_TABLE,
        versions[FACT_TABLE],
        ["transaction_id", "tx_datetime", "tx_date", "customer_id", "terminal_id", "reported_at"],
        [("tx_date", ">=", first_day), ("tx_date", "<=", last_day)],
    )
    feats = _read_pinned(
        settings,
        FEATURES_TABLE,
        versions[FEATURES_TABLE],
        ["transaction_id", "feature_set_version", *FEATURE_NAMES],
        [("batch_date", ">=", first_day)],
    )
    customers = _read_pinned(settings, CUSTOMERS_TABLE, versions[CUSTOMERS_TABLE], ["customer_id", "segment", "region"])
    terminals = _read_pinned(settings, TERMINALS_TABLE, versions[TERMINALS_TABLE], ["terminal_id", "merchant_category"])
    frame = (
        fct.merge(feats, on="transaction_id", how="inner", validate="one_to_one")
        .merge(customers, on="customer_id", how="left", validate="many_to_one")
        .merge(terminals, on="terminal_id", how="left", validate="many_to_one")
    )
    expected = fct.groupby("tx_date").size().to_dict()
    got = frame.groupby("tx_date").size().to_dict() if len(frame) else {}
    missing = {str(d): n - got.get(d, 0) for d, n in sorted(expected.items()) if got.get(d, 0) != n}
    if missing:
        raise ValueError(
            f"transactions without features (per day: {missing}): build them first "
            f"(python -m jobs.features.build --date {min(missing)} --through {max(missing)})"
        )
    for c in SLICE_COLUMNS:
        frame[c] = frame[c].fillna("unknown").astype(str)
    frame["tx_date"] = pd.to_datetime(frame["tx_date"]).dt.date
    return frame.sort_values(["tx_datetime", "transaction_id"], kind="mergesort").reset_index(drop=True)


def data_end(settings: Settings, versions: dict[str, int]) -> date:
    """The last transaction day in the pinned fact table."""
    days = _read_pinned(settings, FACT_TABLE, versions[FACT_TABLE], ["tx_date"])["tx_date"]
    if days.empty:
        raise ValueError(f"{FACT_TABLE} is empty: run data_pipeline first")
    return max(days)


def frame_hash(frame: pd.DataFrame) -> str:
    """Content hash of a frame (row order included): equal hashes, equal training data."""
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:16]


def build_training_set(
    out_dir: Path,
    settings: Settings | None = None,
    last_test_day: date | None = None,
    train_days: int | None = None,
    gap_days: int | None = None,
    test_days: int | None = None,
    n_folds: int | None = None,
    versions: dict[str, int] | None = None,
) -> dict:
    """Read the pinned tables, check the span is covered, write frame + manifest to ``out_dir``.

    The tables are read at their pinned Delta versions with delta-rs: no Spark session, no JVM.
    """
    settings = settings or get_settings()
    maturity, t = settings.data.label_maturity_days, settings.training
    versions = versions or current_versions(settings)
    end = data_end(settings, versions)
    label_as_of = datetime.combine(end + timedelta(days=1), datetime.min.time())
    plan = plan_windows(
        last_test_day or end - timedelta(days=maturity),
        train_days or t.train_days,
        t.gap_days if gap_days is None else gap_days,
        test_days or t.test_days,
        t.tune_folds if n_folds is None else n_folds,
        label_as_of=label_as_of,
    )
    latest = end - timedelta(days=maturity)
    if plan.main.evaluate.end > latest:
        # unreported recent rows would be dropped as pending while reported frauds stay: a biased test set
        raise ValueError(
            f"the test window ends {plan.main.evaluate.end}, but labels are mature only up to {latest} "
            f"(data ends {end}, maturity {maturity} days)"
        )
    if plan.gap_days < maturity:
        raise ValueError(
            f"gap of {plan.gap_days} days < label maturity of {maturity} days: the last training "
            f"days would keep their reported frauds and lose their unreported rows (a biased training set)"
        )
    if not plan.folds:
        raise ValueError("tuning needs at least one validation fold (n_folds >= 1)")
    frame = load_frame(settings, plan.first_day, plan.last_day, versions)
    if frame.empty or frame["tx_date"].min() > plan.first_day:
        have = "nothing" if frame.empty else f"data from {frame['tx_date'].min()}"
        raise ValueError(
            f"not enough history: the windows start {plan.first_day} ({json.dumps(plan.describe())}), there is {have}"
        )
    return write_training_set(frame, plan, versions, maturity, out_dir)


def write_training_set(frame: pd.DataFrame, plan: Plan, versions: dict, maturity_days: int, out_dir: Path) -> dict:
    """Check the frame (feature version, both classes in every part); write it and its manifest."""
    stale = sorted(set(frame["feature_set_version"]) - {FEATURE_SET_VERSION})
    if stale:
        raise ValueError(
            f"features computed with feature-set version(s) {stale}, current is {FEATURE_SET_VERSION}: rebuild them (python -m jobs.features.build --date FIRST --through LAST)"
        )
    main, folds = split(frame, plan, maturity_days)
    for name, part in [("train", main.train), ("test", main.evaluate)] + [
        (f"fold{i} {p}", getattr(f, p)) for i, f in enumerate(folds) for p in ("train", "evaluate")
    ]:
        if part.empty or part["label"].nunique() < 2:
            raise ValueError(
                f"the {name} rows need both classes (got {len(part)} rows, {int(part['label'].sum()) if len(part) else 0} frauds): widen the windows"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_dir / FRAME_FILE, index=False)
    manifest = {
        "plan": plan.to_dict(),
        "windows": plan.describe(),
        "delta_versions": versions,
        "feature_set_version": FEATURE_SET_VERSION,
        "label_maturity_days": maturity_days,
        "frame_rows": len(frame),
        "frame_hash": frame_hash(frame),
        "rows": {
            "train": len(main.train),
            "test": len(main.evaluate),
            "folds": [[len(f.train), len(f.evaluate)] for f in folds],
        },
        "frauds": {"train": int(main.train["label"].sum()), "test": int(main.evaluate["label"].sum())},
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
    log.info("training set %s: %s", out_dir, json.dumps(manifest["rows"]))
    return manifest


def load_training_set(out_dir: Path) -> tuple[dict, pd.DataFrame, SplitData, list[SplitData]]:
    """Manifest, frame and splits of a set written by :func:`build_training_set`."""
    manifest = json.loads((out_dir / MANIFEST_FILE).read_text())
    frame = pd.read_parquet(out_dir / FRAME_FILE)
    frame["tx_date"] = pd.to_datetime(frame["tx_date"]).dt.date
    plan = Plan.from_dict(manifest["plan"])
    main, folds = split(frame, plan, int(manifest["label_maturity_days"]))
    return manifest, frame, main, folds


def plan_of(manifest: dict) -> Plan:
    return Plan.from_dict(manifest["plan"])
