"""deploy_model: roll a model version out to the running scoring service, or roll the champion back.

Runs when ``train_model`` approves a challenger (the champion Asset its ``promote`` task emits: the
version is then the registry's ``candidate``), or from the UI with the parameters below:

build the Bento -> smoke test (the Bento on a spare port, pinned to the version, read-only: golden
requests valid and invalid, latency budget) -> shadow (the champion answers, the candidate scores the
same transactions on the side; compared) -> canary phases (the candidate answers a stable share of
cards, 5% -> 25% -> 100% by default; each compared) -> switch (the candidate becomes the champion).
Any failed stage fails its task (a failed comparison is not retried: the evidence would not change) and ``rollback`` ends the
rollout at once and records why; ``outcome`` then fails the run with the reason (a run is green only
when the version switched, or the rollback asked for was done). The service follows the registry
within ``PIPELINE_SERVING_RELOAD_S``: no restart, no failed request. Strategy ``rollback`` points
the champion back at the previous champion (``make rollback`` does the same).

Every decision, with its numbers, is a row of ``governance.audit_log``
(``python -m jobs.release.registry audit``). Logic lives in ``jobs.deployment.stages``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from assets import CHAMPION_MODEL, DEPLOYED_MODEL

from jobs.config import STRATEGIES, get_settings

settings = get_settings()
deploy = settings.deploy


def _actor(dag_run) -> str:
    """Who or what acts: the run, and the user who triggered it from the UI when there is one."""
    user = getattr(dag_run, "triggering_user_name", None)
    return f"deploy_model/{dag_run.run_id}" + (f" ({user})" if user else "")


@dag(
    dag_id="deploy_model",
    description="Smoke-test, shadow and canary a model version in the running service, then switch; or roll back",
    schedule=[CHAMPION_MODEL],
    start_date=pendulum.instance(settings.airflow.start_datetime),
    catchup=False,
    max_active_runs=1,
    # a failed comparison or smoke test raises AirflowFailException (no retry: the evidence would not
    # change); the retry is for infrastructure, e.g. the registry unreachable for a moment
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["deployment", "serving", "mlflow"],
    doc_md=__doc__,
    params={
        "version": Param(
            None,
            type=["null", "string"],
            description="model version to deploy; empty = the version the triggering Asset names, or the candidate",
        ),
        "strategy": Param(
            deploy.strategy,
            enum=[*STRATEGIES, "rollback"],
            description="progressive = shadow then canary phases; canary; shadow (then switch); direct = smoke "
            "test then switch; rollback = champion := previous champion",
        ),
        "canary_shares": Param(
            deploy.shares,
            type="array",
            items={"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            description="canary phases: share of cards answered by the candidate, increasing, ending with 1",
        ),
        "observe_seconds": Param(
            deploy.observe_s, type="integer", minimum=1, description="observation window of each phase (seconds)"
        ),
    },
)
def deploy_model():
    @task
    def plan(params: dict | None = None, dag_run=None, triggering_asset_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.deployment.stages import DeploymentFailed
        from jobs.deployment.stages import plan as make_plan

        events = [e.extra for e in (triggering_asset_events or {}).get(CHAMPION_MODEL, [])]
        version = params.get("version") or next((e.get("version") for e in reversed(events) if e.get("version")), None)
        try:
            return make_plan(
                version, params["strategy"], params["canary_shares"], params["observe_seconds"], _actor(dag_run)
            )
        except DeploymentFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    @task.branch
    def route(p: dict) -> str:
        return "manual_rollback" if p["strategy"] == "rollback" else "build_bento"

    @task
    def build_bento(p: dict) -> str:
        from jobs.deployment.stages import build_bento as build

        return build(p)

    @task(execution_timeout=timedelta(minutes=15))
    def smoke_test(p: dict, bento: str) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.deployment.stages import DeploymentFailed
        from jobs.deployment.stages import smoke_test as run

        try:
            return run(p, bento)
        except DeploymentFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    @task
    def shadow(p: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from jobs.deployment.stages import DeploymentFailed, observe

        if p["strategy"] not in ("progressive", "shadow"):
            raise AirflowSkipException(f"strategy {p['strategy']}: no shadow")
        try:
            return observe(p, "shadow")
        except DeploymentFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(trigger_rule="none_failed_min_one_success")
    def canary(ti=None) -> list[dict]:
        """The phases one after the other (each observed and compared), in one task: a phase never overlaps the next.

        Upstream: the smoke test and the shadow only (the plan is read from XCom), so it runs after a
        passed smoke test whether or not there was a shadow.
        """
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from jobs.deployment.stages import DeploymentFailed, observe

        p = ti.xcom_pull(task_ids="plan")
        if p["strategy"] not in ("progressive", "canary"):
            raise AirflowSkipException(f"strategy {p['strategy']}: no canary")
        try:
            return [observe(p, "canary", share) for share in p["canary_shares"]]
        except DeploymentFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(trigger_rule="none_failed_min_one_success", outlets=[DEPLOYED_MODEL])
    def switch(ti=None, outlet_events=None) -> dict:
        """Upstream: the smoke test and the canary (the plan is read from XCom): skipped with them on a rollback run."""
        from jobs.deployment.stages import switch as do_switch

        p = ti.xcom_pull(task_ids="plan")
        out = do_switch(p)
        outlet_events[DEPLOYED_MODEL].extra = {"version": p["version"]}
        return out

    @task(trigger_rule="one_failed")
    def rollback(ti=None) -> dict:
        """A stage failed (the switch included): end the rollout (the champion answers everything again), record why."""
        from jobs.deployment.stages import abort

        p = ti.xcom_pull(task_ids="plan")
        if not p:
            return {"note": "the plan failed: nothing was rolled out"}
        return abort(p)

    @task(trigger_rule="all_done")
    def outcome(ti=None) -> dict:
        """The run's verdict: success when the version switched (or the rollback asked for was done), failed otherwise.

        A leaf, so the run is red whenever a deployment did not reach its switch, even though the
        automatic rollback itself succeeded.
        """
        from airflow.sdk.exceptions import AirflowFailException

        for task_id in ("switch", "manual_rollback"):
            done = ti.xcom_pull(task_ids=task_id)
            if done:
                return {"outcome": task_id, **done}
        rolled_back = ti.xcom_pull(task_ids="rollback") or {}
        raise AirflowFailException(
            f"version {rolled_back.get('version')} was not deployed: {rolled_back.get('reason') or 'a stage failed'}"
        )

    @task
    def manual_rollback(p: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.deployment.stages import DeploymentFailed
        from jobs.deployment.stages import manual_rollback as run

        try:
            return run(p)
        except DeploymentFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    p = plan()
    bento = build_bento(p)
    smoked = smoke_test(p, bento)
    shadowed = shadow(p)
    canaried = canary()
    switched = switch()
    manual = manual_rollback(p)
    route(p) >> [bento, manual]
    smoked >> shadowed >> canaried >> switched
    smoked >> [canaried, switched]
    rolled_back = rollback()
    [bento, smoked, shadowed, canaried, switched] >> rolled_back
    [switched, rolled_back, manual] >> outcome()


deploy_model()
