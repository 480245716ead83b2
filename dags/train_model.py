"""train_model: training set -> tune -> final model -> evaluate -> challenger -> gate -> approval -> champion.

Runs every Monday 03:00 UTC and when ``monitor_model`` requests a retraining (the Asset
``monitoring.retrain_request``: a drift or performance alert, its reason tagged on the MLflow run as
``training.trigger``); trigger it from the UI with the parameters below. It no longer runs on every
feature update: a daily retrain costs a tuning run a day to find, most days, a model the gate rejects
(same world, one more day of data), and it would hide drift instead of reporting it.

* ``build_training_set`` pins the Delta versions of the features and the labels and writes the
  out-of-time split (training window, gap, test window) and the tuning folds;
* ``tune`` runs Ray Tune (Optuna + ASHA) on the folds, one nested MLflow run per trial;
* ``train_final`` fits the best configuration on the training window and logs the model;
* ``evaluate`` writes the evaluation report (JSON, HTML, plots) next to the baseline's;
* ``register_challenger`` registers a new version with alias ``challenger``;
* ``gate`` compares it with the ``champion`` on the same rows and records the decision;
* a passed challenger waits in ``approve_promotion`` (Airflow's *Required actions* page: Approve or
  Reject; a human-in-the-loop task), or goes through ``auto_approve`` when ``PIPELINE_AUTO_APPROVE=true``
  (demo, tests);
* ``promote`` records who approved and when, and hands the version to ``deploy_model`` (the registry's
  ``candidate``, rolled out by shadow and canary; the very first model becomes champion at once). A rejected challenger
  ends in ``rejected`` and never serves; ``record_outcome`` writes down what happened (a person's
  Reject, or no answer within 7 days, is tagged on the version so it can never be promoted later;
  a run that failed before the gate is recorded as such).

Logic lives in ``jobs.training`` and ``jobs.release``; this file only wires it. A training set that
cannot be built (not enough history, windows that would bias the labels) fails at once, without a
retry: waiting five minutes does not change the data.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from assets import CHAMPION_MODEL, RETRAIN_REQUEST

from jobs.config import get_settings
from jobs.release.decisions import DEFAULT_ON_TIMEOUT, ApprovalOption, NextStep, approvers

settings = get_settings()
training = settings.training

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}


def training_trigger(dag_run, events) -> str:
    """Why this run trains: the monitoring's retrain request (with its reasons), the weekly schedule, or a person."""
    requests = (events or {}).get(RETRAIN_REQUEST, [])
    if requests:
        return "retrain_request: " + "; ".join(str((e.extra or {}).get("reason", "?")) for e in requests)
    run_type = getattr(dag_run, "run_type", None)
    return "schedule" if getattr(run_type, "value", run_type) == "scheduled" else "manual"


def _int(default: int, minimum: int, description: str) -> Param:
    return Param(default, type="integer", minimum=minimum, description=description)


@dag(
    dag_id="train_model",
    description="Tune, train, evaluate and register the fraud model; promote it through a gate and an approval",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=[RETRAIN_REQUEST]),
    start_date=pendulum.instance(settings.airflow.start_datetime),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["training", "mlflow", "ray"],
    doc_md=__doc__,
    params={
        "last_test_day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="last day of the test window; empty = the last day whose labels are mature",
        ),
        "train_days": _int(training.train_days, 1, "training window (days)"),
        "gap_days": _int(training.gap_days, 0, "gap between training and test (days); keep it >= the label maturity"),
        "test_days": _int(training.test_days, 1, "test window and validation-fold length (days)"),
        "n_folds": _int(training.tune_folds, 1, "prequential validation folds for tuning"),
        "n_trials": _int(training.tune_trials, 1, "Ray Tune trials"),
    },
)
def train_model():
    @task  # reads Delta with delta-rs: no Spark, so not in the Spark pool
    def build_training_set(
        params: dict | None = None, run_id: str | None = None, dag_run=None, triggering_asset_events=None
    ) -> dict:
        from datetime import date

        from airflow.sdk.exceptions import AirflowFailException

        from jobs.training.train import stage_build

        day = params.get("last_test_day")
        try:
            return stage_build(
                run_id,
                last_test_day=date.fromisoformat(day) if day else None,
                train_days=params["train_days"],
                gap_days=params["gap_days"],
                test_days=params["test_days"],
                n_folds=params["n_folds"],
                n_trials=params["n_trials"],
                trigger=training_trigger(dag_run, triggering_asset_events),
            )
        except ValueError as exc:  # the data or the parameters cannot give a training set: a retry would not either
            raise AirflowFailException(str(exc)) from exc

    @task(execution_timeout=timedelta(hours=6))
    def tune(ctx: dict) -> dict:
        from jobs.training.tune import stage_tune

        return stage_tune(ctx)

    @task
    def train_final(ctx: dict) -> dict:
        from jobs.training.train import stage_train

        return stage_train(ctx)

    @task
    def evaluate(ctx: dict) -> dict:
        from jobs.training.evaluate import stage_evaluate

        return stage_evaluate(ctx)

    @task
    def register_challenger(ctx: dict) -> dict:
        from jobs.release.registry import register_challenger as register

        return register(ctx)

    @task
    def gate(ctx: dict) -> dict:
        from jobs.release.gate import gate as run_gate

        return run_gate(ctx)

    @task.branch
    def route(ctx: dict) -> str:
        from jobs.release.approval import next_step

        return next_step(ctx).value

    @task(task_id=NextStep.REJECTED.value)
    def rejected(ctx: dict) -> dict:
        """The end of a rejected challenger: its reasons are on the model version and in this log."""
        import logging

        logging.getLogger(__name__).warning(
            "challenger v%s rejected: %s", ctx["version"], "; ".join(ctx["gate_reasons"])
        )
        return {"version": ctx["version"], "reasons": ctx["gate_reasons"]}

    @task(task_id=NextStep.AUTO_APPROVE.value)
    def auto_approve(ctx: dict) -> dict:
        from jobs.release.approval import auto_approval

        return auto_approval()

    # HITLOperator rather than ApprovalOperator: on Reject the latter skips downstream without
    # returning the answer, so who rejected and when could not be written on the version.
    approve_promotion = HITLOperator(
        task_id=NextStep.ASK_A_PERSON.value,
        options=[ApprovalOption.APPROVE.value, ApprovalOption.REJECT.value],
        subject="Promote "
        + settings.mlflow.model_name
        + " version {{ ti.xcom_pull(task_ids='gate')['version'] }} to champion?",
        body="{{ ti.xcom_pull(task_ids='gate')['approval_request'] }}",  # a table and links (jobs.release.approval)
        assigned_users=[{"id": user, "name": user} for user in approvers(settings)],  # only they may answer
        response_timeout=timedelta(days=7),
        defaults=DEFAULT_ON_TIMEOUT.value,  # no answer within the timeout = not promoted
        retries=0,  # a human decision is not retried: a retry would ask again and block the next run
    )

    @task(trigger_rule="none_failed_min_one_success", outlets=[CHAMPION_MODEL])
    def promote(ti=None, outlet_events=None) -> dict:
        """Upstream: the two approval paths only, so a challenger the gate rejected (both skipped) is skipped here too.

        An approved challenger becomes the registry's ``candidate`` and the champion Asset (with its
        version) starts ``deploy_model``, which rolls it out; the first champion is promoted at once.
        A person's Reject (or the timeout default) skips it: no champion Asset is emitted.
        """
        from airflow.sdk.exceptions import AirflowSkipException

        from jobs.release.approval import promote_approved

        answer = ti.xcom_pull(task_ids=NextStep.ASK_A_PERSON.value) or ti.xcom_pull(
            task_ids=NextStep.AUTO_APPROVE.value
        )
        promoted = promote_approved(ti.xcom_pull(task_ids="gate"), answer)
        if promoted is None:
            raise AirflowSkipException("the promotion was not approved")
        outlet_events[CHAMPION_MODEL].extra = {"version": promoted["version"], "deployment": promoted["deployment"]}
        return promoted

    @task(trigger_rule="all_done")
    def record_outcome(ti=None) -> dict:
        """Whatever happened, written down: promoted, rejected by the gate or by a person, or failed before the gate."""
        from jobs.release.approval import record_outcome as record

        return record(
            ti.xcom_pull(task_ids="gate"),
            ti.xcom_pull(task_ids="promote"),
            ti.xcom_pull(task_ids=NextStep.ASK_A_PERSON.value),
        )

    ctx = evaluate(train_final(tune(build_training_set())))
    gated = gate(register_challenger(ctx))
    choice = route(gated)
    auto = auto_approve(gated)
    done = promote()
    choice >> [rejected(gated), auto, approve_promotion]
    [auto, approve_promotion] >> done >> record_outcome()


train_model()
