"""The monitoring loop end to end: a drift starts, is flagged, a retraining is requested, a new champion wins.

    python bench/drift_scenario.py [--drift new_fraud_pattern] [--drift-start 2026-03-01] [--after-days 10]
        [--before-days 2] [--history-days 60] [--customers 3000] [--terminals 6000] [--keep DIR]

In a throw-away data directory, MLflow store and Airflow DB, with the real jobs:

1. Simulate the whole span with ``--drift`` starting at ``--drift-start`` (``D``).
2. Backfill the history before ``D - before_days`` in one pass (``jobs.data.backfill``), then train the
   first champion through ``train_model`` (``dag.test``; promotion auto-approved, as in the demo).
3. Day by day from ``D - before_days`` to ``D + after_days - 1``, what the scheduler would run:
   ingestion, ``dbt build``, features and their validation, ``batch_score``, then ``monitor_model``
   (``dag.test``). When its ``request_retraining`` emits ``monitoring.retrain_request``, ``train_model``
   runs for that day (``dag.test``: tune, train, evaluate, gate, promote).
4. Print the timeline: per day the champion, the drift and performance checks, the retraining and
   the gate's decision, and the champion's Card Precision@100 and average precision on the day's
   scores with the labels known at the end; then the summary against the targets.

Time runs faster than in production so that a full loop fits in a benchmark: frauds are reported
within ``--report-delay`` days (production: 7), and the label maturity, the training gap and the test
window are that long too (``PIPELINE_LABEL_MATURITY_DAYS``/``GAP_DAYS``/``TEST_DAYS``); the training
window is 21 days, tuning 4 trials on one fold. The first training that can learn a pattern that
started on ``D`` runs on ``D + maturity + test + gap`` at the earliest (its training window must reach
``D``): with the production windows (7/7/7) that is ``D + 21``; here ``D + 6``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _env(work: Path, args) -> None:
    delay = str(args.report_delay)
    os.environ.setdefault("AIRFLOW_HOME", str(REPO))  # airflow.cfg: the dags folder (as scripts/env.sh sets it)
    os.environ.update(
        {
            "PIPELINE_DATA_DIR": str(work / "data"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "PIPELINE_START_DATE": "2025-01-01",
            "PIPELINE_LABEL_MATURITY_DAYS": delay,
            "PIPELINE_GAP_DAYS": delay,
            "PIPELINE_TEST_DAYS": delay,
            "PIPELINE_TRAIN_DAYS": str(args.train_days),
            "PIPELINE_TUNE_FOLDS": "1",
            "PIPELINE_TUNE_TRIALS": str(args.trials),
            "PIPELINE_AUTO_APPROVE": "true",
            "PIPELINE_ALERT_EMAIL": "",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(work / "airflow-logs"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )


def _quiet() -> None:
    import logging

    for name in ("great_expectations", "py4j", "jobs", "airflow", "mlflow", "ray", "alembic", "cosmos"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Scenario:
    """The day-by-day loop; every step is the job (or the DAG) the scheduler would run."""

    def __init__(self, args):
        from airflow.dag_processing.dagbag import BundleDagBag

        from jobs.config import get_settings

        self.args = args
        self.settings = get_settings()
        dags_dir = REPO / "dags"
        bag = BundleDagBag(dag_folder=str(dags_dir), bundle_path=dags_dir)
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        self.dags = bag.dags
        self.timeline: list[dict] = []

    def run_dag(self, dag_id: str, day: date, conf: dict | None = None):
        run = self.dags[dag_id].test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC), run_conf=conf)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        return run, states

    def champion(self) -> str | None:
        from jobs.monitoring.reference import champion_version

        return champion_version(self.settings)

    def train(self, day: date, why: str) -> dict:
        """train_model for ``day`` (data through ``day``): its version, the gate's decision, promoted or not."""
        from jobs.platform.tracking import Tag, mlflow_client

        before = self.champion()
        t = time.perf_counter()
        run, states = self.run_dag("train_model", day + timedelta(days=1), {"n_trials": self.args.trials, "n_folds": 1})
        client = mlflow_client(self.settings)
        name = self.settings.mlflow.model_name
        newest = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        after = self.champion()
        out = {
            "version": newest.version,
            "gate": newest.tags.get(Tag.GATE_DECISION, "?"),
            "reasons": newest.tags.get(Tag.GATE_REASONS, ""),
            "train_window": newest.tags.get(Tag.WINDOW_TRAIN, ""),
            "promoted": after != before and after == newest.version,
            "seconds": round(time.perf_counter() - t),
            "state": str(run.state),
            "why": why,
        }
        print(
            f"  train_model ({why}): v{out['version']} trained on {out['train_window']}, gate {out['gate']}, "
            f"{'promoted' if out['promoted'] else 'not promoted'} ({out['seconds']} s, run {run.state}) {out['reasons']}",
            flush=True,
        )
        return out

    def data_day(self, day: date) -> None:
        """data_pipeline's jobs for ``day`` and batch_score's, in order."""
        from jobs.data.ingest import ingest
        from jobs.data.reference import ingest_references
        from jobs.features.build import build_features
        from jobs.features.validate import validate_feature_partition
        from jobs.platform.dbt_runner import run_dbt
        from jobs.scoring.batch import score_day

        run_id = f"drift_scenario__{day}"
        for source in ("transactions", "fraud_reports"):
            ingest(day, source, settings=self.settings, run_id=run_id)
        ingest_references(day, run_id=run_id, settings=self.settings)
        run_dbt(["build", "--exclude", "resource_type:unit_test", "--quiet"], self.settings, vars={"as_of": str(day)})
        build_features(day, settings=self.settings)
        validate_feature_partition(day, settings=self.settings)
        score_day(day, self.settings)

    def monitor(self, day: date) -> dict:
        """monitor_model for ``day``; what its checks and its retrain request said."""
        from jobs.monitoring.checks import read_checks

        run, states = self.run_dag("monitor_model", day, {"date": day.isoformat()})
        checks = read_checks(self.settings, day)

        def status(check: str, metric: str | None = None) -> str:
            rows = checks[(checks["check_name"] == check) & (checks["source"] == "batch")]
            if metric:
                rows = rows[rows["metric"] == metric]
            for level in ("alert", "warn", "ok"):
                if (rows["status"] == level).any():
                    return level
            return "-"

        drift_rows = checks[(checks["metric"] == "drifted_features") & (checks["source"] == "batch")]
        request = next(ti for ti in run.get_task_instances() if ti.task_id == "request_retraining")
        reason = request.xcom_pull(task_ids="request_retraining") if str(request.state) == "success" else None
        return {
            "monitor_state": str(run.state),
            "data_drift": status("data_drift", "drifted_features"),
            "drifted": (drift_rows["detail"].iloc[0] or "") if len(drift_rows) else "",
            "prediction_drift": status("prediction_drift"),
            "performance": status("performance"),
            "retrain_requested": reason,
            "retrain_skipped": str(request.state) == "skipped",
        }


def day_metrics(settings, day: date, k: int) -> dict:
    """The day's scores against the labels known now: Card Precision@k and average precision."""
    from jobs.evaluation.metrics import card_precision_at_k, threshold_free
    from jobs.monitoring.checks import labelled_scores

    frame = labelled_scores(settings, day)
    if len(frame) == 0 or frame["label"].nunique() < 2:
        return {"cp": None, "ap": None, "frauds": int(frame["label"].sum()) if len(frame) else 0}
    return {
        "cp": card_precision_at_k(frame, frame["score"].to_numpy(), k)["mean"],
        "ap": threshold_free(frame["label"], frame["score"])["average_precision"],
        "frauds": int(frame["label"].sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drift", default="new_fraud_pattern", choices=("new_fraud_pattern", "amount_shift"))
    parser.add_argument("--drift-start", type=date.fromisoformat, default=date(2026, 3, 1))
    parser.add_argument("--before-days", type=int, default=2, help="days run one by one before the drift")
    parser.add_argument("--after-days", type=int, default=10, help="days run one by one from the drift's start")
    parser.add_argument("--history-days", type=int, default=60, help="days backfilled before those")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--terminals", type=int, default=6000)
    parser.add_argument("--report-delay", type=int, default=2, help="frauds reported within this many days")
    parser.add_argument("--train-days", type=int, default=21)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="work directory to use and keep (default: a temp dir)")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    _env(work, args)
    t_start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True)
    _quiet()

    from jobs.config import get_settings, load_training_config
    from jobs.data.backfill import backfill
    from jobs.data.simulate import SimulationConfig, simulate
    from jobs.platform.dbt_runner import ensure_manifest

    settings = get_settings()
    onset = args.drift_start
    first_step = onset - timedelta(days=args.before_days)
    first = first_step - timedelta(days=args.history_days)
    last = onset + timedelta(days=args.after_days - 1)
    cfg = SimulationConfig(
        start_date=first,
        days=(last - first).days + 1,
        n_customers=args.customers,
        n_terminals=args.terminals,
        seed=17,
        drift=args.drift,
        drift_start=onset,
        max_report_delay_days=args.report_delay,
    )
    print(f"work dir {work}; {args.drift} from {onset}; history {first}..{first_step - timedelta(days=1)}", flush=True)
    simulate(cfg, settings.storage.landing_dir)
    ensure_manifest(settings)
    t = time.perf_counter()
    summary = backfill(first, first_step - timedelta(days=1), settings)
    print(f"backfill: {summary['rows_accepted']:,} transactions in {time.perf_counter() - t:.0f} s", flush=True)

    scenario = Scenario(args)
    trainings = {first_step - timedelta(days=1): scenario.train(first_step - timedelta(days=1), "first champion")}
    if scenario.champion() is None:
        print("the first model did not pass the gate: no champion to monitor (see the reasons above)")
        return 1
    k = load_training_config(settings)["evaluation"]["top_k"]
    rows = []
    day = first_step
    while day <= last:
        t = time.perf_counter()
        scenario.data_day(day)
        scored_by = scenario.champion()
        seen = scenario.monitor(day)
        training = None
        if seen["retrain_requested"]:
            training = trainings[day] = scenario.train(day, "retrain_request")
        row = {"day": day, "phase": "drift" if day >= onset else "before", "scored_by": scored_by, **seen}
        row["training"] = training
        row["seconds"] = round(time.perf_counter() - t)
        rows.append(row)
        print(
            f"{day} ({row['phase']}, {row['seconds']} s): scored by v{scored_by}; data drift {seen['data_drift']} "
            f"[{seen['drifted']}], prediction drift {seen['prediction_drift']}, performance {seen['performance']}, "
            f"retraining {'requested' if seen['retrain_requested'] else 'no'}",
            flush=True,
        )
        day += timedelta(days=1)

    for row in rows:
        row.update(day_metrics(settings, row["day"], k))
    _print_timeline(rows, trainings, onset, k)
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s; work dir {work}")
    return 0


def _fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _print_timeline(rows: list[dict], trainings: dict, onset: date, k: int) -> None:
    print(f"\n| day | d | scored by | data drift | prediction drift | performance | retraining | gate | CP@{k} | AP |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["training"]
        retrain = "requested" if r["retrain_requested"] else ("held/none" if r["retrain_skipped"] else "-")
        gate = f"v{t['version']} {t['gate']}{', promoted' if t['promoted'] else ''}" if t else ""
        print(
            f"| {r['day']} | {(r['day'] - onset).days:+d} | v{r['scored_by']} | {r['data_drift']} | "
            f"{r['prediction_drift']} | {r['performance']} | {retrain} | {gate} | {_fmt(r['cp'])} | {_fmt(r['ap'])} |"
        )
    flagged = next((r["day"] for r in rows if r["day"] >= onset and r["data_drift"] == "alert"), None)
    decayed = next((r["day"] for r in rows if r["day"] >= onset and r["performance"] == "alert"), None)
    requested = [r["day"] for r in rows if r["retrain_requested"]]
    # the new champion: the first promoted version whose training window reaches the onset
    recovered = None
    for day, t in sorted(trainings.items()):
        end = (t["train_window"].split("..") + [""])[1][:10]
        if t["promoted"] and end and date.fromisoformat(end) >= onset:
            recovered = (day, t)
            break
    before = _mean(r["cp"] for r in rows if r["day"] < onset)
    champion_after = recovered[1]["version"] if recovered else None
    during = _mean(r["cp"] for r in rows if r["day"] >= onset and r["scored_by"] != champion_after)
    after = _mean(r["cp"] for r in rows if champion_after and r["scored_by"] == champion_after)

    def lag(d):
        return "never" if d is None else f"{d} (day {(d - onset).days + 1} of the drift)"

    print()
    print(json.dumps({"trainings": {str(d): t for d, t in trainings.items()}}, default=str))
    print(f"drift flagged:             {lag(flagged)}  (target: within 2 days)")
    print(f"performance decay flagged: {lag(decayed)}")
    print(f"retraining requested on:   {', '.join(map(str, requested)) or 'never'}")
    if recovered:
        day, t = recovered
        print(f"new champion:              v{t['version']} trained {day}, {lag(day)}  (target: within 10 days)")
    else:
        print("new champion:              none trained on the drift within the run")
    print(
        f"champion CP@{k}: before {_fmt(before)}, during {_fmt(during)}, after {_fmt(after)}"
        f"  (target: after within 0.02 of before)"
    )


if __name__ == "__main__":
    sys.exit(main())
