"""monitor_model: the champion's daily checks, the alerts they raise, and retraining requests.

Runs when ``batch_score`` has scored a day and loaded the service's prediction log (the Assets
``predictions.transaction_scores``, the days in its extra, and ``monitoring.prediction_log``), or
from the UI with a ``date``. Thin by design: each check is one task calling
:mod:`jobs.monitoring.checks` (also ``python -m jobs.monitoring.checks --date D --check NAME``):

* ``data_quality``: quarantine rate, volume against the trailing median, landing schema changes;
* ``data_drift``: the day's features (batch and served) against the champion's training reference;
* ``prediction_drift``: the day's scores and alert rate against the test window's;
* ``skew``: the served feature vectors against the batch features of the same transactions;
* ``numerical_stability``: NaN, infinite or out-of-range scores;
* ``performance``: the champion's metrics on the day whose labels just matured, against its offline
  test metrics, and concept drift (performance down while the inputs did not drift);
* ``staleness``: days since the champion's training cutoff; ``health``: volume, fallbacks, latency;

then ``raise_alerts`` writes the day's alerts to ``monitoring.alerts`` and mails them
(``PIPELINE_ALERT_EMAIL``, Airflow's SMTP connection), ``report`` writes the day's HTML report
(Evidently's drift report and the checks' trends) and logs it to the champion's MLflow run (the task
log names both), and ``request_retraining`` emits the
``monitoring.retrain_request`` Asset with the reason when a drift, performance or staleness alert asks for a
new model: ``train_model`` runs on it. With no such alert, or within the retraining cooldown after the
newest version's training (``retraining.cooldown_days``), it is skipped and emits nothing.
Thresholds: ``jobs/conf/monitoring.yaml``. No JVM: everything reads Delta with delta-rs.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, chain, dag, task
from assets import MONITORING_CHECKS, PREDICTION_LOG, RETRAIN_REQUEST, TRANSACTION_SCORES

from jobs.config import get_settings

settings = get_settings()
CHECKS = (
    "data_quality",
    "data_drift",
    "prediction_drift",
    "skew",
    "numerical_stability",
    "performance",
    "staleness",
    "health",
)


@dag(
    dag_id="monitor_model",
    description="Daily checks of the champion (drift, predictions, numerical health), alerts, retraining requests",
    # both: batch_score emits the scores, then loads the service's prediction log (served checks read it)
    schedule=(TRANSACTION_SCORES & PREDICTION_LOG),
    start_date=pendulum.instance(settings.airflow.start_datetime),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["monitoring"],
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Day to check (YYYY-MM-DD); empty = the day(s) batch_score just scored, or the latest scored day",
        )
    },
    doc_md=__doc__,
)
def monitor_model():
    @task
    def days_to_check(params: dict | None = None, triggering_asset_events=None) -> list[str]:
        from jobs.monitoring.checks import days_to_check as resolve

        events = [e.extra for e in (triggering_asset_events or {}).get(TRANSACTION_SCORES, [])]
        return resolve((params or {}).get("date"), events)

    def check_task(name: str):
        # all_done: the checks run one after the other (each replaces its rows of the day's partition of
        # monitoring.checks; concurrent Delta commits there would conflict), and one that crashes does
        # not stop the next
        @task(task_id=name, trigger_rule="all_done")
        def run(days: list[str]) -> list[dict]:
            from jobs.monitoring.checks import run_checks

            return [run_checks(day, [name]) for day in days]

        return run

    # all_done: a check that crashed must not silence the others' alerts; it is an alert itself
    @task(outlets=[MONITORING_CHECKS], trigger_rule="all_done")
    def raise_alerts(days: list[str], outlet_events=None, ti=None) -> dict:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier
        from airflow.sdk import get_current_context

        from jobs.monitoring.alerts import message, raise_alerts, recipients, retrain_reason

        failed = [name for name in CHECKS if ti.xcom_pull(task_ids=name) is None]  # crashed: no result
        alerts = {day: raise_alerts(day, failed_checks=failed) for day in days}
        mailed = []
        for day, rows in alerts.items():
            if rows and recipients():
                subject, body = message(day, rows)
                # called (not .notify) so the notifier renders its fields with the task's context
                SmtpNotifier(to=recipients(), subject=subject, html_content=body)(get_current_context())
                mailed.append(day)
        outlet_events[MONITORING_CHECKS].extra = {"days": list(days)}
        reasons = [f"{day}: {r}" for day, rows in alerts.items() if (r := retrain_reason(rows))]
        return {
            "alerts": {d: len(a) for d, a in alerts.items()},
            "mailed": mailed,
            "retrain_reason": "; ".join(reasons),
        }

    @task(outlets=[RETRAIN_REQUEST])
    def request_retraining(summary: dict, outlet_events=None) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from jobs.monitoring.alerts import request_retraining

        if not summary["retrain_reason"]:
            raise AirflowSkipException("no drift or performance alert: no retraining requested")
        if not request_retraining(max(summary["alerts"]), summary["retrain_reason"]):
            raise AirflowSkipException(f"retraining held by the cooldown ({summary['retrain_reason']})")
        outlet_events[RETRAIN_REQUEST].extra = {"reason": summary["retrain_reason"]}
        return summary["retrain_reason"]

    @task
    def report(days: list[str]) -> list[dict]:
        """The day's HTML report (Evidently's drift report and the trends), logged to the champion's run."""
        from jobs.monitoring.report import write_report

        return [write_report(day) for day in days]  # each logs its file and MLflow artifact URI

    days = days_to_check()
    checked = [check_task(name)(days) for name in CHECKS]
    chain(*checked)
    summary = raise_alerts(days)
    checked[-1] >> summary
    request_retraining(summary)
    summary >> report(days)


monitor_model()
