"""batch_score: the champion scores each validated day; the investigators get their review queue.

Runs when ``data_pipeline`` emits the validated ``features.transaction_features`` Asset (the day is
in the event's extra), or from the UI with a ``date`` to (re)score one day. Thin by design:

score the day (``predictions.transaction_scores`` and ``predictions.daily_alerts``, top-k cards
with reason codes; re-running a day replaces it) -> load the service's closed prediction-log files
into ``monitoring.prediction_log`` (each file once). No JVM: both read and write Delta with delta-rs.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from assets import DAILY_ALERTS, PREDICTION_LOG, TRANSACTION_FEATURES, TRANSACTION_SCORES

from jobs.config import get_settings

settings = get_settings()


@dag(
    dag_id="batch_score",
    description="Score the day's transactions with the champion; the review queue; load the prediction log",
    schedule=[TRANSACTION_FEATURES],
    start_date=pendulum.instance(settings.airflow.start_datetime),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["scoring", "serving"],
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Day to score (YYYY-MM-DD); empty = the day(s) of the triggering feature Asset, "
            "or the latest day with features",
        )
    },
    doc_md=__doc__,
)
def batch_score():
    @task
    def days_to_score(params: dict | None = None, triggering_asset_events=None) -> list[str]:
        from jobs.scoring.batch import days_to_score as resolve

        events = [e.extra for e in (triggering_asset_events or {}).get(TRANSACTION_FEATURES, [])]
        return resolve((params or {}).get("date"), events)

    @task(outlets=[TRANSACTION_SCORES, DAILY_ALERTS])
    def score(days: list[str], outlet_events=None) -> list[dict]:
        from jobs.scoring.batch import score_day

        summaries = [score_day(day) for day in days]
        outlet_events[TRANSACTION_SCORES].extra = {"days": list(days)}  # monitor_model checks these days
        return summaries

    @task(outlets=[PREDICTION_LOG])
    def load_prediction_log() -> dict:
        from jobs.scoring.prediction_log import load_prediction_log as load

        return load()

    score(days_to_score()) >> load_prediction_log()


batch_score()
