"""Human approval of a promotion, as the ``train_model`` DAG needs it: one call per task.

After the gate, :func:`next_step` picks the branch (rejected, auto-approved, or a person asked
through Airflow's ``ApprovalOperator``). :func:`promote_approved` hands an approved challenger to deployment (the ``candidate`` that
``deploy_model`` rolls out; the champion at once when there is none yet);
:func:`record_outcome` writes down what became of the challenger whatever happened, a person's
Reject or the timeout default included (tagged on the version so it can never be promoted later),
and "failed before the gate" when the run never got that far.

The approval answer is the ``ApprovalOperator``'s XCom (``chosen_options``, ``responded_by_user``,
``responded_at``); :class:`Answer` reads it, so the DAG never parses it itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from jobs.config import Settings, get_settings
from jobs.release.decisions import (
    AUTO_APPROVER,
    DEFAULT_ON_TIMEOUT,
    TIMEOUT_DEFAULT_BY,
    ApprovalOption,
    GateDecision,
    NextStep,
    Outcome,
)
from jobs.release.registry import approve_for_deployment, record_rejection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """One answer to the approval request: the option chosen, by whom, when."""

    option: ApprovalOption
    by: str
    at: str

    @property
    def approved(self) -> bool:
        return self.option is ApprovalOption.APPROVE

    @classmethod
    def from_xcom(cls, value: dict | None) -> Answer | None:
        """Read the approval task's XCom (None when the task did not answer: skipped or failed)."""
        if not value or not value.get("chosen_options"):
            return None
        (chosen,) = value["chosen_options"]
        user = value.get("responded_by_user") or {}
        by = user.get("name") or user.get("id") or TIMEOUT_DEFAULT_BY  # no user: the timeout default applied
        return cls(ApprovalOption(chosen), str(by), str(value.get("responded_at") or ""))


def approval_request(
    version: str,
    evaluation: dict,
    champion_version: str | None,
    champion_report: dict | None,
    decision: dict,
    links: dict[str, str],
) -> str:
    """The body of the approval request (Markdown): challenger, champion and baseline side by side on
    the challenger's test window, the gate's reasons, and links to the model card and the report."""

    def fmt(x, digits=4):
        return "–" if x is None else f"{x:,.{digits}f}"

    def row(name: str, report: dict | None, overall: dict | None = None) -> str:
        o = overall or (report or {}).get("overall", {})
        cost = (report or {}).get("cost", {}) if overall is None else {}
        flagged = (report or {}).get("flagged_slices") if overall is None else None
        parity = (report or {}).get("parity", {}) if overall is None else {}
        gaps = " / ".join(fmt(parity.get(g, {}).get("false_positive_rate_gap")) for g in ("segment", "region"))
        return (
            f"| {name} | {fmt(o.get('auc'))} | {fmt(o.get('average_precision'))} | "
            f"{fmt(o.get('card_precision_at_k'), 3)} | {fmt(cost.get('net_savings'), 0)} | "
            f"{'–' if flagged is None else (', '.join(flagged) or 'none')} | {gaps if parity else '–'} |"
        )

    k = evaluation["overall"].get("k", 100)
    rows = [
        "| model | AUC | average precision | Card Precision@"
        + str(k)
        + " | net savings | flagged slices | FPR gap segment / region |",
        "|---|---:|---:|---:|---:|---|---|",
        row(f"**challenger v{version}**", evaluation),
    ]
    if champion_report is not None:
        rows.append(row(f"champion v{champion_version}", champion_report))
    elif champion_version:
        rows.append(f"| champion v{champion_version} | not comparable on this window | | | | | |")
    else:
        rows.append("| champion | none yet: this would be the first | | | | | |")
    if evaluation.get("baseline"):
        rows.append(row("baseline (logistic regression)", None, evaluation["baseline"]))
    reasons = "".join(f"\n- {r}" for r in decision["reasons"])
    return (
        f"The gate **{decision['decision']}** v{version}, on {evaluation['rows']:,} test transactions "
        f"({evaluation['frauds']:,} frauds):\n\n" + "\n".join(rows) + f"\n\nGate:{reasons}\n\n"
        f"[Model card]({links['model_card']}) · [Evaluation report]({links['evaluation']}) · "
        f"[MLflow run]({links['run']})"
    )


def next_step(gate_result: dict, settings: Settings | None = None) -> NextStep:
    """After the gate: rejected, approved automatically (demo and tests), or ask a person."""
    settings = settings or get_settings()
    if GateDecision(gate_result["gate"]) is not GateDecision.PASSED:
        return NextStep.REJECTED
    return NextStep.AUTO_APPROVE if settings.gate.auto_approve else NextStep.ASK_A_PERSON


def auto_approval() -> dict:
    """The answer ``PIPELINE_AUTO_APPROVE=true`` gives, shaped like the ApprovalOperator's."""
    return {
        "responded_by_user": {"id": "auto-approve", "name": AUTO_APPROVER},
        "responded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "chosen_options": [ApprovalOption.APPROVE.value],
    }


def promote_approved(gate_result: dict, answer: dict | None, settings: Settings | None = None) -> dict | None:
    """On Approve, the challenger goes to deployment (candidate, or first champion); None otherwise."""
    parsed = Answer.from_xcom(answer)
    if parsed is None or not parsed.approved:
        log.info(
            "challenger v%s not promoted: %s",
            gate_result["version"],
            "no answer" if parsed is None else f"{parsed.option} by {parsed.by}",
        )
        return None
    return approve_for_deployment(gate_result["version"], approver=parsed.by, approved_at=parsed.at, settings=settings)


def record_outcome(
    gate_result: dict | None, promoted: dict | None, answer: dict | None, settings: Settings | None = None
) -> dict:
    """What became of the challenger: promoted, rejected by the gate or by a person, or failed before the gate."""
    if gate_result is None:
        log.warning("the run failed before the gate: no challenger was gated, nothing to record on a version")
        return {"outcome": Outcome.FAILED_BEFORE_GATE.value}
    version = gate_result["version"]
    if promoted:
        return {"outcome": Outcome.PROMOTED.value, **promoted}
    if GateDecision(gate_result["gate"]) is not GateDecision.PASSED:
        return {"outcome": Outcome.REJECTED_BY_GATE.value, "version": version, "reasons": gate_result["gate_reasons"]}
    parsed = Answer.from_xcom(answer)
    if parsed is not None and parsed.option is ApprovalOption.REJECT:
        return {
            "outcome": Outcome.REJECTED_BY_APPROVER.value,
            **record_rejection(version, parsed.by, parsed.at, settings),
        }
    log.warning("challenger v%s passed the gate but was not promoted (answer: %s)", version, parsed)
    return {"outcome": Outcome.FAILED_AFTER_GATE.value, "version": version}


__all__ = ["Answer", "DEFAULT_ON_TIMEOUT", "auto_approval", "next_step", "promote_approved", "record_outcome"]
