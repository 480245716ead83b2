"""The daily monitoring step on a 1M-transaction day, next to Evidently's drift report alone.

    python bench/monitor.py [--rows 1000000] [--reference-rows 200000]

Builds a throw-away project state in a temporary ``PIPELINE_DATA_DIR`` (no JVM, nothing of yours is
touched): a registered champion whose monitoring reference is profiled from a ``--reference-rows``
training frame, and one day of ``--rows`` transactions in ``features.transaction_features`` and
``predictions.transaction_scores`` (written with delta-rs), two features shifted. Then, in one run:

1. **the whole step**: every check of ``jobs.monitoring.checks`` for the day (drift, prediction
   drift, data quality, skew, numerical stability, performance, staleness, health), recorded in
   ``monitoring.checks``, and ``raise_alerts`` (``monitoring.alerts``): what ``monitor_model``'s
   check tasks and alerts do;
2. **Evidently alone**: the same day's features read from Delta and Evidently's drift report of them
   (one ``ValueDrift`` per feature against the reference sample, as ``jobs.monitoring.report``
   builds it), saved as HTML;
3. for completeness, the day's whole report (``write_report``: Evidently plus the trends).

Target (the issue): step 1 at least as fast as step 2. The verdicts are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

DAY = date(2026, 3, 2)
SHIFTED = ("tx_amount", "customer_nb_tx_7d")


def synthetic_features(names, n: int, rng, shift: bool) -> pd.DataFrame:
    """Plausible feature columns by name: flags, counts, amounts, ratios, shares, days."""
    columns = {}
    for name in names:
        if name.startswith("tx_during"):
            columns[name] = (rng.random(n) < 0.28).astype("float64")
        elif "nb_tx" in name or "known_fraud_" in name and "share" not in name:
            columns[name] = rng.poisson(3.0, n).astype("float64")
        elif "amount" in name and "ratio" not in name:
            columns[name] = rng.lognormal(3.5, 0.9, n)
        elif "ratio" in name:
            columns[name] = rng.gamma(4.0, 0.25, n)
        elif "risk" in name or "share" in name:
            columns[name] = rng.beta(0.5, 20, n)
        else:
            columns[name] = rng.uniform(0, 30, n)
    frame = pd.DataFrame(columns)
    if shift:
        frame["tx_amount"] *= 1.6
        frame["customer_nb_tx_7d"] += 2
    return frame


def setup(rows: int, reference_rows: int) -> dict:
    """The throw-away state: champion + reference in MLflow, the day's features and scores in Delta."""
    import mlflow
    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.config import get_settings
    from jobs.evaluation.profile import REFERENCE_FILE, build_reference
    from jobs.evaluation.report import EVALUATION_DIR
    from jobs.features.registry import FEATURE_NAMES
    from jobs.platform import delta
    from jobs.platform.tracking import Tag, experiment_id, mlflow_client
    from jobs.scoring.batch import SCORES

    s = get_settings()
    rng = np.random.default_rng(7)
    train = synthetic_features(FEATURE_NAMES, reference_rows, rng, shift=False)
    test_scores = rng.beta(0.3, 12, reference_rows // 4)
    threshold = float(np.quantile(test_scores, 0.99))
    reference = build_reference(train, test_scores, threshold, FEATURE_NAMES)
    client = mlflow_client(s)
    name = s.mlflow.model_name
    with mlflow.start_run(experiment_id=experiment_id(s)) as run:
        mlflow.log_dict(reference, f"{EVALUATION_DIR}/{REFERENCE_FILE}")
        mlflow.log_dict({"bench": True}, "model/MLmodel.json")
        mlflow.set_tag(Tag.WINDOW_CUTOFF, "2026-02-20T00:00:00")
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version
    client.set_registered_model_alias(name, "champion", version)

    day = synthetic_features(FEATURE_NAMES, rows, rng, shift=True)
    ids = [f"t{i:09d}" for i in range(rows)]
    features = pa.Table.from_pandas(day, preserve_index=False).append_column("transaction_id", pa.array(ids))
    features = features.append_column("batch_date", pa.array([DAY] * rows, pa.date32()))
    write_deltalake(str(delta.path(s, "features.transaction_features")), features, partition_by=["batch_date"])
    scores = rng.beta(0.3, 12, rows)
    now = datetime.now(UTC)
    scored = pa.table(
        {
            "transaction_id": ids,
            "tx_datetime": pa.array([datetime(2026, 3, 2, 12, tzinfo=UTC)] * rows, pa.timestamp("us", tz="UTC")),
            "customer_id": [f"c{i % 50_000}" for i in range(rows)],
            "terminal_id": [f"m{i % 100_000}" for i in range(rows)],
            "tx_amount": day["tx_amount"].to_numpy(),
            "batch_date": pa.array([DAY] * rows, pa.date32()),
            "score": scores,
            "alert": scores >= threshold,
            "alert_threshold": np.full(rows, threshold),
            "model_name": [name] * rows,
            "model_version": [str(version)] * rows,
            "feature_set_version": ["bench"] * rows,
            "scored_at": pa.array([now] * rows, pa.timestamp("us", tz="UTC")),
        }
    )
    delta.overwrite_where(s, SCORES, scored, None)
    return {"settings": s, "version": str(version), "reference": reference}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench-monitor-")
    os.environ["PIPELINE_DATA_DIR"] = tmp
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from jobs.config import load_monitoring_config
    from jobs.features.registry import FEATURE_NAMES
    from jobs.monitoring.alerts import raise_alerts
    from jobs.monitoring.checks import batch_features, run_checks
    from jobs.monitoring.report import evidently_drift, evidently_verdicts, reference_sample, write_report

    t0 = time.perf_counter()
    state = setup(args.rows, args.reference_rows)
    s, reference = state["settings"], state["reference"]
    print(f"set-up: {args.rows:,} rows in {time.perf_counter() - t0:.1f} s ({tmp})", flush=True)
    import evidently  # noqa: F401  (import cost counted in neither column)

    t0 = time.perf_counter()
    summary = run_checks(DAY, settings=s)
    alerts = raise_alerts(DAY, s)
    step = time.perf_counter() - t0

    cfg = load_monitoring_config(s)["data_drift"]
    binary = [c for c, p in reference["features"].items() if p["kind"] == "binary"]
    t0 = time.perf_counter()
    current = batch_features(s, DAY)
    snapshot = evidently_drift(reference_sample(reference)[list(FEATURE_NAMES)], current, binary, cfg)
    snapshot.save_html(str(Path(tmp) / "evidently.html"))
    evidently_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    write_report(DAY, s)
    report_s = time.perf_counter() - t0

    ours = sorted(summary["checks"]["data_drift"]["alerts"])
    theirs = sorted(c for c, v in evidently_verdicts(snapshot).items() if v["drift"])
    print(f"\n| {args.rows:,} transactions, {len(FEATURE_NAMES)} features | seconds |")
    print("|---|---|")
    print(f"| whole monitoring step (8 checks + alerts) | {step:.1f} |")
    for name, c in summary["checks"].items():
        print(f"|   {name} | {c['seconds']:.1f} |")
    print(f"| Evidently drift report alone (read + run + HTML) | {evidently_s:.1f} |")
    print(f"| the day's report (Evidently + trends, logged to MLflow) | {report_s:.1f} |")
    print(f"\nstep / Evidently alone: {step / evidently_s:.2f}")
    print(f"alerts raised: {len(alerts)}; drift alerts (ours): {ours}")
    print(f"Evidently's drifted columns: {theirs}; shifted on purpose: {list(SHIFTED)}")
    print(json.dumps({"rows": args.rows, "step_s": round(step, 2), "evidently_s": round(evidently_s, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
