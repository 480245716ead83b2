"""Approval handling and outcomes of train_model, without Airflow: what each answer means."""

from __future__ import annotations

import pytest

from jobs.release.approval import Answer, auto_approval, next_step, promote_approved, record_outcome
from jobs.release.decisions import ApprovalOption, NextStep, Outcome


def test_the_options_are_airflows_approve_and_reject():
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    assert (ApprovalOperator.APPROVE, ApprovalOperator.REJECT) == (ApprovalOption.APPROVE, ApprovalOption.REJECT)


@pytest.mark.parametrize(
    "xcom, expected",
    [
        (
            {
                "chosen_options": ["Approve"],
                "responded_by_user": {"id": "7", "name": "jane"},
                "responded_at": "2026-01-02T10:00:00+00:00",
            },
            Answer(ApprovalOption.APPROVE, "jane", "2026-01-02T10:00:00+00:00"),
        ),
        (
            {
                "chosen_options": ["Reject"],
                "responded_by_user": {"id": "bob"},
                "responded_at": "2026-01-02T11:00:00+00:00",
            },
            Answer(ApprovalOption.REJECT, "bob", "2026-01-02T11:00:00+00:00"),
        ),
        # the timeout default: the scheduler writes the default option and no user
        (
            {"chosen_options": ["Reject"], "responded_by_user": None, "responded_at": "2026-01-09T10:00:00+00:00"},
            Answer(ApprovalOption.REJECT, "timeout default", "2026-01-09T10:00:00+00:00"),
        ),
        (None, None),
        ({"chosen_options": []}, None),
    ],
)
def test_an_answer_is_read_from_the_approval_xcom(xcom, expected):
    assert Answer.from_xcom(xcom) == expected


def test_auto_approval_reads_as_an_approve():
    answer = Answer.from_xcom(auto_approval())
    assert answer.approved and answer.by.startswith("auto-approve") and answer.at


@pytest.mark.parametrize(
    "decision, auto, step",
    [
        ("passed", True, NextStep.AUTO_APPROVE),
        ("passed", False, NextStep.ASK_A_PERSON),
        ("rejected", True, NextStep.REJECTED),
        ("rejected", False, NextStep.REJECTED),
    ],
)
def test_next_step_after_the_gate(settings, decision, auto, step):
    assert next_step({"gate": decision}, settings.override(gate={"auto_approve": auto})) is step


def test_an_unknown_gate_decision_is_an_error_not_a_silent_branch(settings):
    with pytest.raises(ValueError):
        next_step({"gate": "PASSED "}, settings)


def test_outcomes_without_a_registry_call():
    assert record_outcome(None, None, None) == {"outcome": Outcome.FAILED_BEFORE_GATE}
    gated = {"version": "3", "gate": "rejected", "gate_reasons": ["average_precision_gain: AP 0.5 vs champion 0.6"]}
    assert record_outcome(gated, None, None) == {
        "outcome": "rejected by the gate",
        "version": "3",
        "reasons": gated["gate_reasons"],
    }
    promoted = {"version": "3", "previous": "2", "approved_by": "jane"}
    assert record_outcome({**gated, "gate": "passed"}, promoted, None) == {"outcome": "promoted", **promoted}
    # passed, but neither promoted nor rejected (the approval task failed): said so, nothing tagged
    assert record_outcome({**gated, "gate": "passed"}, None, None)["outcome"] == Outcome.FAILED_AFTER_GATE
    # a Reject answer never promotes
    assert (
        promote_approved(
            {**gated, "gate": "passed"}, {"chosen_options": ["Reject"], "responded_by_user": {"id": "bob"}}
        )
        is None
    )
