"""Break cases through exceptions.services: one per fingerprint, carried forward, auto-resolved."""

from datetime import timedelta
from decimal import Decimal

import pytest

from exceptions.models import Case
from reconciliation.runs import services
from reconciliation.runs.models import Break, RunStatus
from reconciliation.runs.tests.factories import AS_OF, TenantFactory, amend, definition, records, source_of
from reconciliation.runs.tests.test_matching import reconcile

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
