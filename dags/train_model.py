"""train_model: training set -> tune -> final model -> evaluate -> challenger -> gate -> approval -> champion.

Runs when ``features.transaction_features`` is updated (the Asset ``data_pipeline`` emits after
feature validation) and every Monday 03:00 UTC; trigger it from the UI with the parameters below.

* ``build_training_set`` pins the Delta versions of the features and the labels and writes the
  out-of-time split (training window, gap, test window) and the tuning folds;
* ``tune`` runs Ray Tune (Optuna + ASHA) on the folds, one nested MLflow run per trial;
* ``train_final`` fits the best configuration on the training window and logs the model;
* ``evaluate`` writes the evaluation report (JSON, HTML, plots) next to the baseline's;
* ``register_challenger`` registers a new version with alias ``challenger``;
* ``gate`` compares it with the ``champion`` on the same rows and records the decision;
* a passed challenger waits in ``approve_promotion`` (Airflow's *Required actions* page: Approve or
  Reject), or goes through ``auto_approve`` when ``PIPELINE_AUTO_APPROVE=true`` (demo, tests);
* ``promote`` moves the ``champion`` alias and records who approved and when. A rejected challenger
  ends in ``rejected`` and never serves; ``record_outcome`` writes down what happened (a person's
  Reject, or no answer within 7 days, is tagged on the version so it can never be promoted later).

Logic lives in ``jobs.train`` and ``jobs.registry``; this file only wires it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from jobs.config import get_settings

settings = get_settings()
TRANSACTION_FEATURES = Asset(name="features.transaction_features", uri=settings.table_uri("features.transaction_features"))
MODEL_ASSET = Asset(name=f"model.{settings.model_name}.champion", uri=f"models:/{settings.model_name}@champion")

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}


def _int(default: int, minimum: int, description: str) -> Param:
    return Param(default, type="integer", minimum=minimum, description=description)


@dag(
    dag_id="train_model",
    description="Tune, train, evaluate and register the fraud model; promote it through a gate and an approval",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=[TRANSACTION_FEATURES]),
    start_date=pendulum.instance(settings.start_datetime),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["training", "mlflow", "ray"],
    doc_md=__doc__,
    params={
        "last_test_day": Param(None, type=["null", "string"], format="date",
                               description="last day of the test window; empty = the last day whose labels are mature"),
        "train_days": _int(settings.train_days, 1, "training window (days)"),
        "gap_days": _int(settings.gap_days, 0, "gap between training and test (days); keep it >= the label maturity"),
        "test_days": _int(settings.test_days, 1, "test window and validation-fold length (days)"),
        "n_folds": _int(settings.tune_folds, 1, "prequential validation folds for tuning"),
        "n_trials": _int(settings.tune_trials, 1, "Ray Tune trials"),
    },
)
def train_model():
    @task(pool=settings.spark_pool)
    def build_training_set(params: dict | None = None, run_id: str | None = None) -> dict:
        from datetime import date

        from jobs.train import stage_build

        day = params.get("last_test_day")
        return stage_build(
            run_id, last_test_day=date.fromisoformat(day) if day else None, train_days=params["train_days"],
            gap_days=params["gap_days"], test_days=params["test_days"], n_folds=params["n_folds"], n_trials=params["n_trials"],
        )

    @task(execution_timeout=timedelta(hours=6))
    def tune(ctx: dict) -> dict:
        from jobs.train import stage_tune

        return stage_tune(ctx)

    @task
    def train_final(ctx: dict) -> dict:
        from jobs.train import stage_train

        return stage_train(ctx)

    @task
    def evaluate(ctx: dict) -> dict:
        from jobs.train import stage_evaluate

        return stage_evaluate(ctx)

    @task
    def register_challenger(ctx: dict) -> dict:
        from jobs.registry import register_challenger as register

        return register(ctx)

    @task
    def gate(ctx: dict) -> dict:
        from jobs.registry import gate as run_gate

        return run_gate(ctx)

    @task.branch
    def route(ctx: dict) -> str:
        from jobs.config import get_settings

        if ctx["gate"] != "passed":
            return "rejected"
        return "auto_approve" if get_settings().auto_approve else "approve_promotion"

    @task
    def rejected(ctx: dict) -> dict:
        """The end of a rejected challenger: its reasons are on the model version and in this log."""
        import logging

        logging.getLogger(__name__).warning("challenger v%s rejected: %s", ctx["version"], "; ".join(ctx["gate_reasons"]))
        return {"version": ctx["version"], "reasons": ctx["gate_reasons"]}

    @task
    def auto_approve(ctx: dict) -> dict:
        from datetime import datetime, timezone

        return {"responded_by_user": {"id": "auto-approve", "name": "auto-approve (PIPELINE_AUTO_APPROVE=true)"},
                "responded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "chosen_options": ["Approve"]}

    approve_promotion = ApprovalOperator(
        task_id="approve_promotion",
        subject="Promote {{ params_model }} version {{ ti.xcom_pull(task_ids='gate')['version'] }} to champion?".replace(
            "{{ params_model }}", settings.model_name),
        body=(
            "The gate passed: {{ ti.xcom_pull(task_ids='gate')['gate_reasons'] | join('; ') }}.\n\n"
            "Test metrics: {{ ti.xcom_pull(task_ids='gate')['metrics'] }}.\n\n"
            "Evaluation report and model card: MLflow run {{ ti.xcom_pull(task_ids='gate')['parent_run_id'] }} "
            "(artifacts `evaluation/evaluation.html`, `model_card/model_card.html`)."
        ),
        response_timeout=timedelta(days=7),
        defaults="Reject",  # no answer within the timeout = not promoted
        retries=0,  # a human decision is not retried: a retry would ask again and block the next run
    )

    @task(trigger_rule="none_failed_min_one_success", outlets=[MODEL_ASSET])
    def promote(ti=None) -> dict:
        """Upstream: the two approval paths only, so a rejected challenger (both skipped) is skipped here too."""
        from jobs.registry import promote as do_promote

        ctx = ti.xcom_pull(task_ids="gate")
        answer = ti.xcom_pull(task_ids="approve_promotion") or ti.xcom_pull(task_ids="auto_approve")
        user = answer["responded_by_user"]
        approver = user.get("name") or user.get("id")
        return do_promote(ctx["version"], approver=str(approver), approved_at=str(answer["responded_at"]))

    @task(trigger_rule="all_done")
    def record_outcome(ti=None) -> dict:
        """Whatever happened after the gate, written down: promoted, rejected by the gate, or by a person."""
        from jobs.registry import record_rejection

        ctx = ti.xcom_pull(task_ids="gate")
        promoted = ti.xcom_pull(task_ids="promote")
        answer = ti.xcom_pull(task_ids="approve_promotion")
        if promoted:
            return {"outcome": "promoted", **promoted}
        if answer and answer.get("chosen_options") == ["Reject"]:
            user = answer.get("responded_by_user") or {}
            return {"outcome": "rejected by approver", **record_rejection(
                ctx["version"], str(user.get("name") or user.get("id") or "timeout default"), str(answer["responded_at"]))}
        return {"outcome": f"gate: {ctx['gate']}", "version": ctx["version"], "reasons": ctx["gate_reasons"]}

    ctx = evaluate(train_final(tune(build_training_set())))
    gated = gate(register_challenger(ctx))
    choice = route(gated)
    auto = auto_approve(gated)
    done = promote()
    choice >> [rejected(gated), auto, approve_promotion]
    [auto, approve_promotion] >> done >> record_outcome()


train_model()
