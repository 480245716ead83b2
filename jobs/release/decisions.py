"""The release's vocabulary: gate decisions, approval options, the step after the gate, the outcome.

Named once here and used by the registry, the gate, the approval handling and the ``train_model``
DAG (whose branch task ids are the :class:`NextStep` values), so no one compares bare strings.
"""

from __future__ import annotations

from enum import StrEnum


class GateDecision(StrEnum):
    """What the gate decided (the ``gate.decision`` tag of a model version)."""

    PASSED = "passed"
    REJECTED = "rejected"


class ApprovalOption(StrEnum):
    """The options a model owner sees on Airflow's Required actions page (``ApprovalOperator``'s two)."""

    APPROVE = "Approve"
    REJECT = "Reject"


DEFAULT_ON_TIMEOUT = ApprovalOption.REJECT  # no answer within the response timeout: not promoted
TIMEOUT_DEFAULT_BY = "timeout default"  # who "answered" when the timeout default applied
AUTO_APPROVER = "auto-approve (PIPELINE_AUTO_APPROVE=true)"
APPROVAL_REJECTED = "rejected"  # the value of a version's approval tag once a person (or the timeout) said no


class NextStep(StrEnum):
    """Where ``train_model`` goes after the gate; the values are the DAG's task ids."""

    REJECTED = "rejected"
    AUTO_APPROVE = "auto_approve"
    ASK_A_PERSON = "approve_promotion"


class Outcome(StrEnum):
    """What became of a training run's challenger, as ``record_outcome`` writes it down."""

    PROMOTED = "promoted"
    REJECTED_BY_GATE = "rejected by the gate"
    REJECTED_BY_APPROVER = "rejected by approver"
    FAILED_BEFORE_GATE = "failed before the gate"
    FAILED_AFTER_GATE = "passed the gate, not promoted: the approval or the promotion failed"


def approvers(settings) -> list[str]:
    """The Airflow users who may answer a promotion approval (``PIPELINE_APPROVERS``)."""
    users = [u.strip() for u in settings.gate.approvers.split(",") if u.strip()]
    if not users:
        raise ValueError("PIPELINE_APPROVERS is empty: nobody could answer a promotion approval")
    return users
