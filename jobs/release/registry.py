"""The model registry: register a challenger, promote a champion, roll back, load what serves.

Aliases on the registered model (``PIPELINE_MODEL_NAME``, names in :class:`jobs.platform.tracking.Alias`)
say what serves:

* ``challenger``: the latest trained version, evaluated, waiting for (or refused by) the gate;
* ``champion``: the version serving loads (``models:/<name>@champion``);
* ``previous_champion``: the champion it replaced, for a one-command rollback;
* ``candidate``: approved, being rolled out by ``deploy_model`` (shadow, canary; :mod:`jobs.release.rollout`).

An approved challenger (:func:`approve_for_deployment`, what ``train_model`` calls) becomes the
``candidate``: ``deploy_model`` smoke-tests, shadows and canaries it, then calls :func:`promote`.
The very first champion is promoted at once (nothing serves yet, so there is nothing to compare
with or protect). The running service follows the aliases within ``PIPELINE_SERVING_RELOAD_S``,
so :func:`promote` and :func:`rollback` take effect there without a restart. Every promotion,
approval and rollback is appended to ``governance.audit_log`` (:mod:`jobs.release.audit`).

:func:`promote` refuses a version the gate did not pass (:mod:`jobs.release.gate`), one a person
rejected, and one gated against a champion that has changed since, so a version that serves has
always been compared with what it replaces.

    python -m jobs.release.registry status
    python -m jobs.release.registry promote --version N --approver "jane@bank"   # gate must have passed
    python -m jobs.release.registry rollback --approver "jane@bank"      # also ends a rollout in progress
    python -m jobs.release.registry audit [--version N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime

from jobs.config import Settings, get_settings
from jobs.platform.logs import setup_logging
from jobs.platform.tracking import NO_CHAMPION, Alias, Metric, Tag, mlflow_client
from jobs.release import audit, rollout
from jobs.release.decisions import APPROVAL_REJECTED as REJECTED
from jobs.release.decisions import GateDecision

log = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def alias_version(client, name: str, alias: str):
    """The model version behind ``alias``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register_challenger(ctx: dict, settings: Settings | None = None) -> dict:
    """Register the run's model as a new version (lineage tags and test metrics copied) and point ``challenger`` at it.

    Idempotent: a retried task finds the version already registered for its run.
    """
    import mlflow

    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            name, description="Card-fraud score per transaction (LightGBM on the feature registry)."
        )
    run = client.get_run(ctx["parent_run_id"])
    lineage = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{ctx['parent_run_id']}'")
    if existing:  # a retried task: the version of this run is already registered
        mv = max(existing, key=lambda v: int(v.version))
    else:
        mv = client.create_model_version(
            name, ctx["model_uri"], run_id=ctx["parent_run_id"], tags=lineage, model_id=ctx.get("model_id")
        )
    client.set_registered_model_alias(name, Alias.CHALLENGER, mv.version)
    for k, v in ctx.get("metrics", {}).items():
        client.set_model_version_tag(name, mv.version, Tag.metric(k), f"{v:.6f}")
    log.info("registered %s version %s as %s", name, mv.version, Alias.CHALLENGER)
    return {**ctx, "version": str(mv.version)}


def check_promotable(client, name: str, version: str, current) -> None:
    """Raise ValueError unless ``version`` passed the gate, was neither rejected nor archived, and was gated against ``current``."""
    mv = client.get_model_version(name, version)
    decision = mv.tags.get(Tag.GATE_DECISION)
    if decision != GateDecision.PASSED:
        raise ValueError(f"{name} version {version} did not pass the gate ({decision or 'not gated'}): it cannot serve")
    if mv.tags.get(Tag.ARCHIVED) == "true":
        raise ValueError(
            f"{name} version {version} was archived by {mv.tags.get(Tag.ARCHIVED_BY)} at {mv.tags.get(Tag.ARCHIVED_AT)}: "
            "its training data may be vacuumed, it cannot serve"
        )
    if mv.tags.get(Tag.APPROVAL) == REJECTED:
        raise ValueError(
            f"{name} version {version} was rejected by {mv.tags.get(Tag.REJECTED_BY)} at {mv.tags.get(Tag.REJECTED_AT)}"
        )
    gated_against = mv.tags.get(Tag.GATE_CHAMPION_AT_GATE, NO_CHAMPION)
    if (str(current.version) if current else NO_CHAMPION) != gated_against and str(
        getattr(current, "version", "")
    ) != str(version):
        raise ValueError(
            f"{name} version {version} was gated against champion {gated_against}, but the champion is now "
            f"{current.version if current else NO_CHAMPION}: re-run the gate (train_model) before promoting"
        )


def promote(
    version: str,
    approver: str,
    approved_at: str | None = None,
    settings: Settings | None = None,
    actor: str | None = None,
) -> dict:
    """Make ``version`` the champion (gate must have passed); record who approved and when.

    ``actor``: who acts, when not the approver (``deploy_model``'s switch). The service swaps to the
    new champion within ``PIPELINE_SERVING_RELOAD_S``.
    """
    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    current = alias_version(client, name, Alias.CHAMPION)
    check_promotable(client, name, version, current)
    if current is not None and str(current.version) != str(version):
        client.set_registered_model_alias(name, Alias.PREVIOUS_CHAMPION, current.version)
        client.set_model_version_tag(name, current.version, Tag.RETIRED_AT, now_iso())
    client.set_registered_model_alias(name, Alias.CHAMPION, version)
    record = {Tag.APPROVED_BY: approver, Tag.APPROVED_AT: approved_at or now_iso(), Tag.PROMOTED_AT: now_iso()}
    for k, v in record.items():
        client.set_model_version_tag(name, version, k, v)
    log.info("%s version %s is champion (approved by %s at %s)", name, version, approver, record[Tag.APPROVED_AT])
    previous = None if current is None else str(current.version)
    audit.record(
        "promote", "done", actor or approver, version, details={"previous": previous, **record}, settings=settings
    )
    return {"version": str(version), "previous": previous, **record}


def approve_for_deployment(
    version: str, approver: str, approved_at: str | None = None, settings: Settings | None = None
) -> dict:
    """An approved challenger: the ``candidate`` that ``deploy_model`` rolls out, or the champion if there is none.

    Checks what :func:`promote` checks (gate passed, not rejected, gated against today's champion),
    records who approved and when on the version, and leaves the champion serving until the
    rollout's switch.
    """
    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    current = alias_version(client, name, Alias.CHAMPION)
    if current is None:
        log.info(
            "no champion yet: version %s is promoted at once (nothing serves, nothing to roll out against)", version
        )
        return {**promote(version, approver, approved_at, settings), "deployment": "first champion"}
    check_promotable(client, name, version, current)
    record = {Tag.APPROVED_BY: approver, Tag.APPROVED_AT: approved_at or now_iso()}
    for k, v in record.items():
        client.set_model_version_tag(name, version, k, v)
    state = rollout.read_state(client, name)
    if state.mode is None:
        rollout.set_candidate(client, name, str(version))
    else:  # a rollout is live: leave it alone; deploy_model (queued behind it) rolls this version out next
        log.warning(
            "version %s approved while version %s is rolled out (%s): it is deployed next",
            version,
            state.candidate,
            state.mode,
        )
    audit.record(
        "approve", "candidate", approver, version, details={"champion": str(current.version)}, settings=settings
    )
    log.info("%s version %s approved by %s: candidate, rolled out by deploy_model", name, version, approver)
    return {"version": str(version), "previous": None, "deployment": "candidate", **record}


def record_rejection(version: str, by: str, at: str, settings: Settings | None = None) -> dict:
    """A person rejected the promotion (or nobody answered in time): say so on the version, so it can never be promoted."""
    settings = settings or get_settings()
    client = mlflow_client(settings)
    for k, v in {Tag.APPROVAL: REJECTED, Tag.REJECTED_BY: by, Tag.REJECTED_AT: at}.items():
        client.set_model_version_tag(settings.mlflow.model_name, version, k, v)
    audit.record(
        "approve", REJECTED, by, version, details={Tag.REJECTED_AT: at}, key=f"reject/{version}", settings=settings
    )
    return {"version": str(version), Tag.APPROVAL: REJECTED, Tag.REJECTED_BY: by, Tag.REJECTED_AT: at}


def rollback(approver: str, settings: Settings | None = None) -> dict:
    """Point ``champion`` back at ``previous_champion`` and end any rollout; the service follows within the reload interval."""
    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    previous = alias_version(client, name, Alias.PREVIOUS_CHAMPION)
    current = alias_version(client, name, Alias.CHAMPION)
    aborted = rollout.clear(client, name)  # a candidate being rolled out stops answering first
    if previous is None:
        if aborted is not None:  # nothing to go back to, but the rollout is stopped: that is the rollback
            out = {
                "champion": None if current is None else str(current.version),
                "rolled_back": None,
                "rollout_aborted": aborted,
            }
            audit.record("rollback", "done", approver, aborted, details=out, settings=settings)
            return out
        raise ValueError(f"{name} has no {Alias.PREVIOUS_CHAMPION}: nothing to roll back to")
    client.set_registered_model_alias(name, Alias.CHAMPION, previous.version)
    client.delete_registered_model_alias(name, Alias.PREVIOUS_CHAMPION)
    if current is not None:
        client.set_model_version_tag(name, current.version, Tag.ROLLED_BACK_AT, now_iso())
        client.set_model_version_tag(name, current.version, Tag.ROLLED_BACK_BY, approver)
    out = {
        "champion": str(previous.version),
        "rolled_back": None if current is None else str(current.version),
        "rollout_aborted": aborted,
    }
    audit.record("rollback", "done", approver, out["rolled_back"], details=out, settings=settings)
    log.info("rolled back: champion is version %s again (was %s)", out["champion"], out["rolled_back"])
    return out


def archive(version: str, by: str, settings: Settings | None = None) -> dict:
    """Retire a version for good: tagged ``archived=true``, so Delta maintenance may vacuum what it pinned.

    Refused while an alias (champion, candidate, challenger, previous champion) points at it: the
    version may still serve, or be rolled back to. An archived version can no longer be reproduced
    once the next ``maintain_lakehouse`` run has vacuumed its data.
    """
    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    mv = client.get_model_version(name, str(version))
    if mv.aliases:
        raise ValueError(f"version {version} is {', '.join(mv.aliases)}: move the alias before archiving it")
    at = now_iso()
    for k, v in {Tag.ARCHIVED: "true", Tag.ARCHIVED_BY: by, Tag.ARCHIVED_AT: at}.items():
        client.set_model_version_tag(name, str(version), k, v)
    audit.record("archive", "done", by, str(version), key=f"archive/{version}", settings=settings)
    return {"version": str(version), Tag.ARCHIVED: True, Tag.ARCHIVED_BY: by, Tag.ARCHIVED_AT: at}


def load_booster(alias: str = Alias.CHAMPION, settings: Settings | None = None):
    """The LightGBM booster behind ``alias`` (the model itself, not a pyfunc wrapper), or None if unset."""
    import mlflow

    settings = settings or get_settings()
    client = mlflow_client(settings)
    if alias_version(client, settings.mlflow.model_name, alias) is None:
        return None
    return mlflow.lightgbm.load_model(f"models:/{settings.mlflow.model_name}@{alias}")


def status(settings: Settings | None = None) -> dict:
    """Champion, challenger and previous champion: version, gate, approval, test metrics, window."""
    settings = settings or get_settings()
    client = mlflow_client(settings)
    out = {}
    for alias in (Alias.CHAMPION, Alias.CANDIDATE, Alias.CHALLENGER, Alias.PREVIOUS_CHAMPION):
        mv = alias_version(client, settings.mlflow.model_name, alias)
        if mv is not None:
            t = mv.tags
            out[str(alias)] = {
                "version": str(mv.version),
                "gate": t.get(Tag.GATE_DECISION),
                "approved_by": t.get(Tag.APPROVED_BY),
                "approved_at": t.get(Tag.APPROVED_AT),
                "test_auc": t.get(Tag.metric(Metric.TEST_AUC)),
                "test_average_precision": t.get(Tag.metric(Metric.TEST_AP)),
                "test_card_precision_at_100": t.get(Tag.metric(Metric.test_card_precision(100))),
                "window": t.get(Tag.WINDOW_TEST),
                **({"approval": REJECTED} if t.get(Tag.APPROVAL) == REJECTED else {}),
            }
    if out:
        out["rollout"] = rollout.read_state(client, settings.mlflow.model_name).describe()
    out["recent_decisions"] = [
        {k: r[k] for k in ("at", "action", "version", "decision", "actor", "strategy", "reason")}
        for r in audit.read(limit=10, settings=settings)
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.release.registry", description="Inspect, promote or roll back the registered model."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="champion, challenger and previous champion")
    p = sub.add_parser("promote", help="make a gate-passed version the champion")
    p.add_argument("--version", required=True)
    p.add_argument("--approver", required=True)
    r = sub.add_parser("rollback", help="champion := previous champion (ends a rollout in progress)")
    r.add_argument("--approver", required=True)
    x = sub.add_parser("archive", help="retire a version: Delta maintenance may then vacuum the data it pinned")
    x.add_argument("--version", required=True)
    x.add_argument("--approver", required=True, help="who archives it (recorded in the audit log)")
    a = sub.add_parser("audit", help="the audit trail (governance.audit_log), oldest first")
    a.add_argument("--version", help="only this model version")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.command == "status":
            out = status()
        elif args.command == "promote":
            out = promote(args.version, args.approver)
        elif args.command == "archive":
            out = archive(args.version, args.approver)
        elif args.command == "audit":
            out = audit.read(args.version)
        else:
            out = rollback(args.approver)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
