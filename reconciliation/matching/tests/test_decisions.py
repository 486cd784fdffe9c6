"""Decisions on break cases are outcomes of their records (issue 15 §2, docs/exceptions.md).

For every resolution reason a person gives: resolve → run again → the case's state and the records'
outcome, with the run's conservation counting decided exclusions and force-matched records. Undoing
a final decision takes four eyes and puts the break back on the next run. Real PostgreSQL, the same
services the desk and the chord call."""

from decimal import Decimal

import pytest
from django.db import connection

from exceptions import services as cases
from exceptions import workflow
from exceptions.models import ApprovalRequest, Case, ResolutionReason
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Role
from jfintech.tests.factories import member
from reconciliation.matching import manual
from reconciliation.matching.models import DecisionExclusion
from reconciliation.matching.tests.factories import outcome_of, reconcile, records, two_way
from reconciliation.runs.models import Match, MatchItem, RunStatus
from reconciliation.runs.tests.factories import amend

pytestmark = pytest.mark.django_db(transaction=True)

EXACT = [{"name": "exact_ref", "type": "exact", "keys": ["reference"]}]
KEEP_OPEN = ["fixed_at_source", "timing", "duplicate_case", "run_rerun"]


@pytest.fixture
def desk():
    """A definition with one amount break (A: 1000 vs 990 EUR, a case) and one missing item (C)."""
    defn, left, right = two_way(EXACT)
    tenant = defn.tenant
    (l_a, l_c), (r_a,) = (
        records(left, {"reference": "A", "amount": "1000.00"}, {"reference": "C", "amount": "5.00"}),
        records(right, {"reference": "A", "amount": "990.00"}),
    )
    first = reconcile(defn)
    assert first.breaks_by_type == {"amount_mismatch": 1, "missing_right": 1}
    people = {
        "analyst": member(tenant, Role.ANALYST, username="ana"),
        "analyst2": member(tenant, Role.ANALYST, username="bob"),
        "approver": member(tenant, Role.APPROVER, username="chief"),
        "approver2": member(tenant, Role.APPROVER, username="deputy"),
    }
    case = Case.objects.get(definition_id=defn.pk, record_ids__contains=[l_a])
    return {
        "defn": defn,
        "tenant": tenant,
        "case": case,
        "ids": (l_a, r_a),
        "l_c": l_c,
        "right": right,
        **people,
    }


def as_user(user) -> dict:
    return {"actor": Actor.for_user(user), "user": user}


def decide(desk, reason: str) -> Case:
    """Resolve the desk's case as a person would for ``reason``: directly, or by request and approval."""
    tenant, case = desk["tenant"], desk["case"]
    if reason in ("written_off", "force_matched", "small_write_off"):
        if reason == "small_write_off":  # at or below the threshold: resolved at once, no approver
            cases.approval_threshold_set(
                tenant=tenant, actor=Actor.for_system("tests"), currency="EUR", amount=Decimal("100")
            )
        kind = "force_match" if reason == "force_matched" else "write_off"
        result = cases.case_request_resolution(
            tenant=tenant, **as_user(desk["analyst"]), case_id=case.pk, kind=kind, note="agreed with the bank"
        )
        if result["approval"] is not None:
            cases.approval_decide(
                tenant=tenant, **as_user(desk["approver"]), approval_id=result["approval"].pk, approve=True
            )
    else:
        cases.case_resolve(
            tenant=tenant, actor=Actor.for_user(desk["analyst"]), case_id=case.pk, reason=reason, note="why"
        )
    case.refresh_from_db()
    assert case.status == "resolved"
    return case


def exclusion_reasons(run) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT record_id, reason FROM reconciliation_run_exclusion WHERE run_id = %s", [run.pk]
        )
        return dict(cursor.fetchall())


def test_every_resolution_reason_declares_its_effect_on_the_records():
    assert set(workflow.EFFECT_OF_REASON) == set(ResolutionReason.values)
    assert {"written_off", "force_matched", "not_a_break"} == workflow.FINAL_REASONS
    assert {r for r, e in workflow.EFFECT_OF_REASON.items() if e == "keep_open"} == set(KEEP_OPEN)


@pytest.mark.parametrize("reason", ["written_off", "small_write_off", "not_a_break"])
def test_an_excluding_decision_keeps_the_records_out_of_every_later_run(desk, reason):
    case = decide(desk, reason)
    resolved_as = case.resolution_reason
    l_a, r_a = desk["ids"]

    second = reconcile(desk["defn"])

    assert second.status == RunStatus.COMPLETED, second.error
    assert outcome_of(second) == {l_a: "excluded", r_a: "excluded", desk["l_c"]: "missing_right"}
    assert exclusion_reasons(second) == {
        l_a: f"decision {resolved_as} case {case.pk}",
        r_a: f"decision {resolved_as} case {case.pk}",
    }
    assert (second.records_in_scope, second.excluded, second.in_breaks) == (3, 2, 1)
    assert second.conservation["ok"] is True
    assert second.conservation["decided"] == {"excluded": {resolved_as: 2}, "force_matched_outside_scope": 0}
    case.refresh_from_db()
    assert (case.status, case.resolution_reason, case.reopen_count) == ("resolved", resolved_as, 0)
    assert second.cases["reopened"] == 0
    rows = DecisionExclusion.objects.filter(case_id=case.pk, is_active=True)
    assert sorted(rows.values_list("record_id", flat=True)) == sorted([l_a, r_a])
    # The decision and its effect are one entry of the case's history.
    event = (
        AuditEvent.objects.filter(object_type="exceptions.case", object_id=str(case.pk)).order_by("pk").last()
    )
    assert event.after["effect"] == "exclude"
    assert sorted(event.after["records"]["records"]) == sorted([l_a, r_a])


def test_a_force_match_writes_an_active_manual_match_and_later_runs_account_for_it(desk):
    case = decide(desk, "force_matched")
    l_a, r_a = desk["ids"]

    match = Match.objects.get(case_id=case.pk)
    assert (match.status, match.pass_name, match.run_id) == ("active", "manual", None)
    items = MatchItem.objects.filter(match=match)
    assert sorted(items.values_list("record_id", flat=True)) == sorted([l_a, r_a])
    assert all(items.values_list("is_active", flat=True))

    second = reconcile(desk["defn"])

    assert second.status == RunStatus.COMPLETED, second.error
    assert outcome_of(second) == {desk["l_c"]: "missing_right"}  # matched: out of the open items
    assert second.conservation["decided"] == {"excluded": {}, "force_matched_outside_scope": 2}
    case.refresh_from_db()
    assert (case.status, case.resolution_reason, case.reopen_count) == ("resolved", "force_matched", 0)
    # A decided match is undone only by undoing the decision (four eyes), never by a plain unmatch.
    with pytest.raises(ApplicationError) as err:
        manual.match_unmatch(
            tenant=desk["tenant"], actor=Actor.for_user(desk["analyst"]), match_id=match.pk, reason="oops"
        )
    assert err.value.code == "decided_match"


@pytest.mark.parametrize("reason", KEEP_OPEN)
def test_an_expected_to_clear_decision_keeps_the_records_open_and_the_case_reopens_with_its_history(
    desk, reason
):
    case = decide(desk, reason)
    l_a, r_a = desk["ids"]

    second = reconcile(desk["defn"])

    assert outcome_of(second) == {
        l_a: "amount_mismatch",
        r_a: "amount_mismatch",
        desk["l_c"]: "missing_right",
    }
    assert second.excluded == 0
    assert second.conservation["decided"]["excluded"] == {}
    assert not DecisionExclusion.objects.filter(case_id=case.pk).exists()
    case.refresh_from_db()
    assert (case.status, case.resolution_reason, case.reopen_count) == ("open", "", 1)
    assert second.cases["reopened"] == 1
    reopened = AuditEvent.objects.get(
        object_type="exceptions.case", object_id=str(case.pk), action="case.reopened"
    )
    assert reopened.before == {"status": "resolved", "resolution_reason": reason, "effect": "keep_open"}


@pytest.mark.parametrize("reason", ["written_off", "not_a_break", "force_matched"])
def test_undoing_a_final_decision_takes_four_eyes_and_the_next_run_sees_the_break_again(desk, reason):
    tenant, case = desk["tenant"], decide(desk, reason)
    l_a, r_a = desk["ids"]
    # Reopening directly would leave the records decided under an open case: refused.
    with pytest.raises(ApplicationError) as err:
        cases.case_reopen(tenant=tenant, actor=Actor.for_user(desk["analyst"]), case_id=case.pk)
    assert err.value.code == "undo_needs_approval"

    result = cases.case_request_resolution(
        tenant=tenant,
        **as_user(desk["approver2"]),
        case_id=case.pk,
        kind="undo_decision",
        note="bank disputes it",
    )
    approval = result["approval"]
    assert approval.kind == "undo_decision"
    case.refresh_from_db()
    assert case.status == "resolved"  # still decided until a second person approves
    for who, code in (("approver2", "maker_cannot_check"), ("analyst2", "permission_denied")):
        with pytest.raises(ApplicationError) as err:
            cases.approval_decide(tenant=tenant, **as_user(desk[who]), approval_id=approval.pk, approve=True)
        assert err.value.code == code
    cases.approval_decide(tenant=tenant, **as_user(desk["approver"]), approval_id=approval.pk, approve=True)

    case.refresh_from_db()
    assert (case.status, case.resolution_reason, case.reopen_count) == ("open", "", 1)
    assert not DecisionExclusion.objects.filter(case_id=case.pk, is_active=True).exists()
    assert not Match.objects.filter(case_id=case.pk, status="active").exists()
    event = (
        AuditEvent.objects.filter(object_type="exceptions.case", object_id=str(case.pk)).order_by("pk").last()
    )
    assert (event.action, event.after["undone"], event.after["checker"]) == (
        "case.approval_approved",
        reason,
        "chief",
    )

    third = reconcile(desk["defn"])

    assert outcome_of(third) == {l_a: "amount_mismatch", r_a: "amount_mismatch", desk["l_c"]: "missing_right"}
    assert third.conservation["decided"] == {"excluded": {}, "force_matched_outside_scope": 0}
    case.refresh_from_db()
    assert (case.status, case.last_run_id, case.reopen_count) == ("open", third.pk, 1)


def test_a_decision_its_records_cannot_carry_rolls_back_whole(desk):
    """The decision and its effect commit together: a record amended while the write-off waited for
    its approver refuses the approval, and nothing of it is written."""
    tenant, case = desk["tenant"], desk["case"]
    result = cases.case_request_resolution(
        tenant=tenant, **as_user(desk["analyst"]), case_id=case.pk, kind="write_off", note="uncollectable"
    )
    amend(desk["right"], desk["ids"][1], amount=Decimal("995.00"))

    with pytest.raises(ApplicationError) as err:
        cases.approval_decide(
            tenant=tenant, **as_user(desk["approver"]), approval_id=result["approval"].pk, approve=True
        )

    assert err.value.code == "records_not_active"
    case.refresh_from_db()
    assert case.status == "pending_approval"
    assert ApprovalRequest.objects.get(pk=result["approval"].pk).status == "pending"
    assert not DecisionExclusion.objects.filter(case_id=case.pk).exists()


def test_a_force_match_needs_records_of_both_sides(desk):
    lonely = Case.objects.get(definition_id=desk["defn"].pk, record_ids__contains=[desk["l_c"]])
    with pytest.raises(ApplicationError) as err:
        cases.case_request_resolution(
            tenant=desk["tenant"], **as_user(desk["analyst"]), case_id=lonely.pk, kind="force_match", note="x"
        )
    assert err.value.code == "invalid_sides"
    lonely.refresh_from_db()
    assert lonely.status == "open"
    assert not ApprovalRequest.objects.filter(case=lonely).exists()


def test_a_sharded_run_honours_decisions_too(desk):
    from reconciliation.matching import sharding
    from reconciliation.runs import services as runs
    from reconciliation.runs.tests.factories import ACTOR, AS_OF

    case = decide(desk, "not_a_break")
    l_a, r_a = desk["ids"]
    run = runs.run_start(
        tenant=desk["tenant"],
        actor=ACTOR,
        definition=desk["defn"],
        trigger="cli",
        as_of=AS_OF,
        dispatch=False,
    )

    split = sharding.run_execute_sharded_inline(run, shard_count=3)

    assert split.status == RunStatus.COMPLETED, split.error
    assert outcome_of(split) == {l_a: "excluded", r_a: "excluded", desk["l_c"]: "missing_right"}
    assert split.conservation["decided"] == {"excluded": {"not_a_break": 2}, "force_matched_outside_scope": 0}
    case.refresh_from_db()
    assert (case.status, case.reopen_count) == ("resolved", 0)
