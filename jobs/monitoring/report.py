"""The daily monitoring report: Evidently's drift report and the checks' trends, logged to MLflow.

``python -m jobs.monitoring.report --date D`` (the ``report`` task of ``monitor_model``) writes
``<data>/monitoring/reports/D/``:

* ``drift.html``: Evidently's report of the day's batch features against the champion's reference
  (a sample drawn from its training profile: monitoring never reads the raw training set),
  Kolmogorov-Smirnov for continuous features and a two-proportion z-test for binary ones;
* ``index.html``: the day's check table and the trends over the last 60 days as plots (drifted
  features, score PSI and alert-rate ratio, delayed-label AUC / AP / Card Precision@k next to the
  offline values, bad scores), with a link to ``drift.html``;

and logs both to the champion's MLflow run under ``monitoring/D/``. The alerts are decided by the
faster numpy path of :mod:`jobs.monitoring.checks`; ``tests/monitoring`` shows both reach the same
verdicts on the same data. Evidently's tests are significance tests: on a large day they also flag
shifts too small for the alert rule, which asks for an effect size (PSI or KS distance) as well.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import logging
import sys
from datetime import date, timedelta

import numpy as np
import pandas as pd

from jobs.config import Settings, get_settings, load_monitoring_config
from jobs.features.registry import FEATURE_NAMES
from jobs.monitoring.checks import batch_features, read_checks
from jobs.monitoring.reference import NoReference, load_reference
from jobs.platform.tracking import mlflow_client

log = logging.getLogger(__name__)

TREND_DAYS = 60
REFERENCE_SAMPLE = 20_000


def reference_sample(reference: dict, n: int = REFERENCE_SAMPLE, seed: int = 0) -> pd.DataFrame:
    """Rows drawn from a reference profile: the shares of ones (binary), of each value (few distinct
    values), or through the percentiles (an inverse CDF, linear between them)."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name, p in reference["features"].items():
        if p["kind"] == "binary":
            columns[name] = (rng.random(n) < p["p1"]).astype("float64")
        elif "values" not in p and "percentiles" not in p:
            continue  # no finite training value: nothing to draw
        elif "values" in p:
            shares = np.asarray(p["shares"])
            columns[name] = rng.choice(np.asarray(p["values"]), size=n, p=shares / shares.sum())
        else:
            columns[name] = np.interp(rng.random(n), np.linspace(0, 1, len(p["percentiles"])), p["percentiles"])
    return pd.DataFrame(columns)


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, binary: list[str], cfg: dict):
    """Evidently's drift report (its snapshot) of ``current`` against ``reference``, column by column."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    continuous = [c for c in reference.columns if c not in binary]
    # Evidently's PSI bins equal-width (Sturges) on both samples, blind to a shift inside a long tail
    # (amounts); its two-sample KS and two-proportion z tests are the closer match to the alert rule.
    metrics = [ValueDrift(column=c, method="ks", threshold=cfg["ks_pvalue"]) for c in continuous]
    metrics += [ValueDrift(column=c, method="z", threshold=cfg["chi2_pvalue"]) for c in binary]
    definition = DataDefinition(numerical_columns=continuous, categorical_columns=binary)
    report = Report(metrics, include_tests=True)
    return report.run(
        Dataset.from_pandas(current.astype(dict.fromkeys(binary, "int64")), data_definition=definition),
        Dataset.from_pandas(reference.astype(dict.fromkeys(binary, "int64")), data_definition=definition),
    )


def evidently_verdicts(snapshot) -> dict[str, dict]:
    """Per column: Evidently's drift score, method and verdict (its test fails on drift)."""
    d = snapshot.dict()
    failed = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in d["tests"]}
    return {
        m["config"]["column"]: {"score": float(m["value"]), "method": m["config"]["method"], "drift": failed[m["id"]]}
        for m in d["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }


def _plot(frame: pd.DataFrame, title: str, ylabel: str, reference: dict | None = None) -> str:
    """A trend plot as an inline PNG (``<img>``), one line per column of ``frame`` (index: dates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    for column in frame.columns:
        ax.plot(frame.index, frame[column], marker="o", markersize=3, label=column)
        if reference and reference.get(column) is not None:
            ax.axhline(reference[column], linestyle="--", linewidth=0.8, color=ax.lines[-1].get_color())
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if len(frame.columns) > 1:
        ax.legend(fontsize=7)
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="{html.escape(title)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _trend(history: pd.DataFrame, check: str, metric: str, subjects=None) -> pd.DataFrame:
    rows = history[(history["check_name"] == check) & (history["metric"] == metric) & (history["source"] == "batch")]
    if subjects is not None:
        rows = rows[rows["subject"].isin(subjects)]
    return rows.pivot_table(index="check_date", columns="subject", values="value", aggfunc="last").sort_index()


def trends_html(history: pd.DataFrame) -> str:
    """The checks' trends as plots (empty sections say so)."""
    parts = []
    for title, check, metric, ylabel, subjects in (
        ("Drifted features (batch)", "data_drift", "drifted_features", "features", None),
        ("Score PSI against the test window", "prediction_drift", "psi", "PSI", None),
        ("Alert rate against the test window's", "prediction_drift", "ratio", "ratio", None),
        ("Delayed-label performance (dashed: offline)", "performance", "online", "metric", None),
        ("Bad scores (NaN, inf, out of [0, 1])", "numerical_stability", "bad_score_share", "share", None),
    ):
        frame = _trend(history, check, metric, subjects)
        if frame.empty:
            parts.append(f"<h3>{html.escape(title)}</h3><p>No data yet.</p>")
            continue
        offline = None
        if check == "performance":
            rows = history[(history["check_name"] == check) & (history["metric"] == metric)]
            offline = {r.subject: json.loads(r.detail or "{}").get("offline") for r in rows.itertuples()}
        parts.append(f"<h3>{html.escape(title)}</h3>" + _plot(frame, title, ylabel, offline))
    return "\n".join(parts)


def write_report(day: date | str, settings: Settings | None = None, log_to_mlflow: bool = True) -> dict:
    """Build the day's report (Evidently drift + trends) and log it to the champion's run."""
    settings = settings or get_settings()
    day = date.fromisoformat(str(day)[:10])
    cfg = load_monitoring_config(settings)["data_drift"]
    out = settings.storage.data_dir / "monitoring" / "reports" / day.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    checks = read_checks(settings)
    today = checks[checks["check_date"] == day]
    versions = today["model_version"].dropna()
    version = str(versions.mode().iloc[0]) if len(versions) else None
    drift_link, summary = "<p>No drift report: no champion reference for this day.</p>", {}
    current = batch_features(settings, day)
    if version is not None and len(current):
        try:
            reference = load_reference(version, settings)
        except NoReference:
            reference = None
        if reference is not None:
            binary = [c for c, p in reference["features"].items() if p["kind"] == "binary"]
            columns = [c for c in FEATURE_NAMES if c in reference["features"]]
            snapshot = evidently_drift(reference_sample(reference)[columns], current[columns], binary, cfg)
            snapshot.save_html(str(out / "drift.html"))
            summary = evidently_verdicts(snapshot)
            drifted = sorted(c for c, v in summary.items() if v["drift"])
            drift_link = (
                f'<p><a href="drift.html">Evidently drift report</a> (version {html.escape(version)}): '
                f"{len(drifted)} of {len(summary)} features drift: {html.escape(', '.join(drifted) or 'none')}.</p>"
            )
    history = checks[checks["check_date"] > day - timedelta(days=TREND_DAYS)]
    history = history[history["check_date"] <= day]
    table = (
        today.drop(columns=["computed_at"]).to_html(index=False, na_rep="", border=0)
        if len(today)
        else "<p>No checks.</p>"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Monitoring {day}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{font-size:12px;border-collapse:collapse}"
        "td,th{padding:2px 6px;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>Monitoring of {day}</h1>{drift_link}<h2>Trends (last {TREND_DAYS} days)</h2>{trends_html(history)}"
        f"<h2>The day's checks</h2>{table}</body></html>"
    )
    (out / "index.html").write_text(page)
    logged = None
    if log_to_mlflow and version is not None:
        client = mlflow_client(settings)
        run_id = client.get_model_version(settings.mlflow.model_name, version).run_id
        for name in ("index.html", "drift.html"):
            if (out / name).exists():
                client.log_artifact(run_id, str(out / name), f"monitoring/{day}")
        logged = f"runs:/{run_id}/monitoring/{day}/index.html"
    result = {"date": day.isoformat(), "model_version": version, "report": str(out / "index.html"), "mlflow": logged}
    result["evidently_drifted"] = sorted(c for c, v in summary.items() if v["drift"])
    log.info("monitoring report of %s: %s (MLflow: %s)", day, out / "index.html", logged)
    return result


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m jobs.monitoring.report", description=__doc__.split("\n")[0])
    parser.add_argument("--date", required=True, help="the day (YYYY-MM-DD) whose checks are recorded")
    parser.add_argument("--no-mlflow", action="store_true", help="write the files only")
    args = parser.parse_args(argv)
    setup_logging()
    print(json.dumps(write_report(args.date, log_to_mlflow=not args.no_mlflow)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
