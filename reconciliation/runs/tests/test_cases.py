"""Break cases through exceptions.services: one per fingerprint, carried forward, auto-resolved."""

from datetime import timedelta
from decimal import Decimal

import pytest

from exceptions.models import Case
from exceptions.selectors import case_history
from reconciliation.runs import services
from reconciliation.runs.models import Break, RunStatus
from reconciliation.runs.tests.factories import (
    ACTOR,
    AS_OF,
    TenantFactory,
    amend,
    definition,
    records,
    source_of,
)
from reconciliation.runs.tests.test_matching import outcome_of, reconcile

pytestmark = pytest.mark.django_db(transaction=True)


def test_carry_forward_one_break_fixed_between_two_runs_resolves_its_case_and_updates_the_others():
    tenant = TenantFactory()
    defn = definition(tenant)
    left, right = source_of(defn, "left"), source_of(defn, "right")
    (l1, _l2, l3) = records(
        left,
        {"reference": "A", "amount": "100.00"},
        {"reference": "B", "amount": "20"},
        {"reference": "C", "amount": "30"},
    )
    (r1, _r3) = records(right, {"reference": "A", "amount": "99.00"}, {"reference": "C", "amount": "31"})

    first = reconcile(defn)
    assert first.breaks_by_type == {"amount_mismatch": 2, "missing_right": 1}
    assert first.cases["opened"] == 3
    cases_before = {c.fingerprint: c for c in Case.objects.filter(definition_id=defn.pk)}
    assert len(cases_before) == 3
    fixed_fp = Break.objects.get(run=first, record_ids__contains=[l1]).fingerprint

    amend(right, r1, amount=Decimal("100.00"))  # the bank corrects its line: same item, version 2
    # B's break changes type: its counterpart arrives with another amount (same case, new type).
    records(right, {"reference": "B", "amount": "25"})

    second = reconcile(defn)
    assert second.status == RunStatus.COMPLETED
    assert second.breaks_by_type == {"amount_mismatch": 2}
    assert second.cases == {"opened": 1, "reopened": 0, "updated": 1, "resolved": 1}
    cases_after = {c.fingerprint: c for c in Case.objects.filter(definition_id=defn.pk)}
    fixed = cases_after[fixed_fp]
    assert (fixed.status, fixed.resolution_reason) == ("resolved", "auto_matched")
    still = next(c for c in cases_after.values() if l3 in c.record_ids)
    assert (still.status, still.run_count, still.last_run_id) == ("open", 2, second.pk)
    # B: L2 alone was a case (missing_right); now L2+R is a new item (new natural keys), so a new case;
    # nothing was opened twice for the same fingerprint.
    assert len(cases_after) == 4
    assert Case.objects.filter(definition_id=defn.pk).values("fingerprint").distinct().count() == 4


def test_position_break_carries_forward_by_account_and_instrument_and_resolves_when_it_balances():
    tenant = TenantFactory()
    defn = definition(tenant, kind="three_way", lookback_days=1, lookahead_days=0)
    pos = source_of(defn, "position")
    day1, day2 = AS_OF - timedelta(days=1), AS_OF
    records(
        pos,
        {"account": "A", "instrument": "I", "quantity": "10", "business_date": day1 - timedelta(days=1)},
        {"account": "A", "instrument": "I", "quantity": "11", "business_date": day1},
    )
    first = services.run_execute_inline(
        services.run_start(
            tenant=tenant, actor=services.RUNNER, definition=defn, trigger="cli", as_of=day1, dispatch=False
        )
    )
    assert first.breaks_by_type == {"position_break": 1}
    records(pos, {"account": "A", "instrument": "I", "quantity": "11", "business_date": day2})
    second = services.run_execute_inline(
        services.run_start(
            tenant=tenant, actor=services.RUNNER, definition=defn, trigger="cli", as_of=day2, dispatch=False
        )
    )
    assert second.breaks_by_type == {}
    case = Case.objects.get(definition_id=defn.pk)
    assert (case.status, case.resolution_reason) == ("resolved", "auto_matched")


def test_a_copy_of_a_record_an_earlier_run_matched_stays_a_duplicate_on_the_same_case():
    """The matched sibling is out of every later run's scope (it is in an active match); the copy is
    still a copy: a `duplicate` break run after run, on the same case, not a new `missing_left`."""
    tenant = TenantFactory()
    defn = definition(tenant)
    left, right = source_of(defn, "left"), source_of(defn, "right")
    row = {"reference": "A", "amount": "100.00", "value_date": AS_OF}
    (l1,) = records(left, row)
    r1, r1_copy = records(right, row, row)

    first = reconcile(defn)
    assert outcome_of(first) == {l1: "matched:exact_ref", r1: "matched:exact_ref", r1_copy: "duplicate"}
    case = Case.objects.get(definition_id=defn.pk)
    assert (case.break_type, case.record_ids) == ("duplicate", [r1_copy])

    def later_run(days: int):
        run = services.run_start(
            tenant=tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF + timedelta(days=days),
            dispatch=False,
        )  # fmt: skip
        return services.run_execute_inline(run)

    for days in (0, 1):  # the same window again, then the next day's (which still holds AS_OF)
        run = later_run(days)
        assert run.status == RunStatus.COMPLETED, run.error
        assert outcome_of(run) == {r1_copy: "duplicate"}
        assert run.breaks_by_type == {"duplicate": 1}
        assert run.conservation["ok"]
        assert run.conservation["in_scope"] == 1
        assert run.cases == {"opened": 0, "reopened": 0, "updated": 1, "resolved": 0}  # seen again
        again = Case.objects.get(definition_id=defn.pk)
        assert (again.pk, again.break_type, again.status, again.last_run_id) == (
            case.pk, "duplicate", "open", run.pk)  # fmt: skip
    events = set(case_history(case=case).values_list("action", flat=True))
    assert events == {"case.opened"}, events

    # A copy that arrives after its sibling was matched is a duplicate from its first run; a record
    # that differs from the matched one in amount is not (it is an open item of its own).
    r1_late, r1_other = records(right, row, row | {"amount": "100.01"})
    got = outcome_of(later_run(1))
    assert got == {r1_copy: "duplicate", r1_late: "duplicate", r1_other: "missing_left"}
