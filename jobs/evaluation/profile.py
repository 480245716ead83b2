"""Reference profiles and the drift statistics computed against them.

A model version carries a *reference profile* of its training data (``monitoring_reference.json``,
logged with the evaluation at training time; :func:`build_reference`): for every model feature the
binned reference distribution (decile cut points of the training values and the share of rows in each
bin, or the share of ones for a binary feature), and for the score its distribution and alert rate on
the test window. Monitoring compares a day's values with it, never with the raw training set:

* continuous values: the population stability index (PSI) over the reference bins, and the
  Kolmogorov-Smirnov statistic evaluated at the reference cut points (a binned KS: a lower bound of
  the exact statistic) with its asymptotic p-value;
* binary values: a chi-square test of the 2x2 table (reference and current counts of 0 and 1) and the
  absolute change of the share of ones.

Pure numpy/scipy, no JVM. It lives with the evaluation because training writes the reference;
monitoring (:mod:`jobs.monitoring.checks`) reads it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROFILE_FORMAT = 1
REFERENCE_FILE = "monitoring_reference.json"  # in the evaluation folder of the version's MLflow run
N_BINS = 10
MAX_DISCRETE_VALUES = 50  # a column with at most this many distinct values keeps their shares
EPS = 1e-4  # floor of a bin share in the PSI, so an empty bin gives a large but finite term


def _finite(values) -> tuple[np.ndarray, int]:
    """The finite values as float64, and how many were missing (NaN, inf or None)."""
    x = np.asarray(values, dtype="float64")
    ok = np.isfinite(x)
    return x[ok], int(x.size - ok.sum())


def profile_values(values, n_bins: int = N_BINS) -> dict:
    """The reference profile of one column: binary (share of ones) or continuous (decile bins)."""
    x, missing = _finite(values)
    n = int(x.size + missing)
    if x.size and np.isin(x, (0.0, 1.0)).all():
        return {"kind": "binary", "n": n, "missing": missing / n, "p1": float(x.mean())}
    if not x.size:
        return {"kind": "continuous", "n": n, "missing": 1.0, "edges": [], "proportions": [1.0]}
    edges = np.unique(np.quantile(x, np.arange(1, n_bins) / n_bins))
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    profile = {
        "kind": "continuous",
        "n": n,
        "missing": missing / n,
        "edges": edges.tolist(),
        "proportions": (counts / x.size).tolist(),
        "min": float(x.min()),
        "max": float(x.max()),
    }
    # The shape, for the report's reference sample: the values' shares when there are few (counts),
    # else the percentiles (an inverse CDF within 1% of the data's).
    values, value_counts = np.unique(x, return_counts=True)
    if values.size <= MAX_DISCRETE_VALUES:
        profile["values"], profile["shares"] = values.tolist(), (value_counts / x.size).tolist()
    else:
        profile["percentiles"] = np.quantile(x, np.linspace(0, 1, 101)).tolist()
    return profile


def build_reference(features, scores, alert_threshold: float | None, columns) -> dict:
    """A model version's reference: its training features (a DataFrame) and its test-window scores."""
    scores = np.asarray(scores, dtype="float64")
    score = profile_values(scores)
    score["alert_threshold"] = alert_threshold
    score["alert_rate"] = None if alert_threshold is None else float((scores >= alert_threshold).mean())
    return {
        "format": PROFILE_FORMAT,
        "n_rows": int(len(features)),
        "features": {c: profile_values(features[c].to_numpy()) for c in columns},
        "score": score,
    }


@dataclass(frozen=True)
class Drift:
    """One column's comparison with its reference."""

    kind: str  # continuous | binary
    n: int  # current rows (finite values)
    psi: float | None = None
    ks_stat: float | None = None
    ks_pvalue: float | None = None
    chi2_pvalue: float | None = None
    p1_reference: float | None = None
    p1_current: float | None = None

    @property
    def p1_change(self) -> float | None:
        return None if self.p1_current is None else abs(self.p1_current - self.p1_reference)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.maximum(np.asarray(reference, dtype="float64"), EPS)
    c = np.maximum(np.asarray(current, dtype="float64"), EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def compare(reference: dict, values) -> Drift:
    """Compare a column's current values with its reference profile."""
    from scipy import stats

    x, _ = _finite(values)
    n_ref = reference["n"]
    if reference["kind"] == "binary":
        n_ref = n_ref * (1 - reference["missing"])  # p1 is a share of the finite values
        ones = float(np.isclose(x, 1.0).sum())
        p1 = ones / x.size if x.size else float("nan")
        ref_ones = reference["p1"] * n_ref
        table = np.array([[ref_ones, n_ref - ref_ones], [ones, x.size - ones]])
        if x.size == 0 or (table.sum(axis=0) == 0).any():
            pvalue = 1.0  # one value only, in both samples: nothing to test
        else:
            pvalue = float(stats.chi2_contingency(table, correction=False)[1])
        return Drift("binary", int(x.size), chi2_pvalue=pvalue, p1_reference=reference["p1"], p1_current=p1)
    edges = np.asarray(reference["edges"], dtype="float64")
    ref_share = np.asarray(reference["proportions"], dtype="float64")
    if x.size == 0:
        return Drift("continuous", 0)
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    cur_share = counts / x.size
    d = float(np.max(np.abs(np.cumsum(cur_share) - np.cumsum(ref_share)))) if edges.size else 0.0
    m = n_ref * (1 - reference["missing"])
    effective = math.sqrt(m * x.size / (m + x.size)) if m > 0 else 0.0
    pvalue = float(stats.kstwobign.sf(d * effective)) if effective else 1.0
    return Drift("continuous", int(x.size), psi=psi(ref_share, cur_share), ks_stat=d, ks_pvalue=pvalue)
