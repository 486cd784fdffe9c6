"""The reconciliation → exceptions contract: cases opened, carried forward, resolved per run, idempotently."""

from dataclasses import replace
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exceptions import services
from exceptions.models import Case, CaseStatus, Priority
from exceptions.tests.factories import TenantFactory, break_input
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError

pytestmark = pytest.mark.django_db

DEF = 7


def sync(tenant, actor, run_id, breaks, **kw):
    return services.cases_sync_for_run(
        tenant=tenant,
        definition_id=DEF,
        definition_name="gl-vs-bank",
        run_id=run_id,
        trace_id=f"{run_id:032x}",
        breaks=breaks,
        actor=actor,
        **kw,
    )


def case_events(case, action=None):
    qs = AuditEvent.objects.filter(object_type="exceptions.case", object_id=str(case.pk))
    return qs.filter(action=action) if action else qs


def test_a_run_opens_one_case_per_break_with_its_snapshot_and_an_audit_event(tenant, system_actor):
    breaks = [
        break_input(DEF, amount="150.00"),
        break_input(DEF, break_type="missing_right", amount="2500000"),
    ]

    assert sync(tenant, system_actor, 10, breaks) == {"opened": 2, "reopened": 0, "updated": 0, "resolved": 0}

    cases = {c.fingerprint: c for c in Case.objects.filter(tenant=tenant)}
    first = cases[breaks[0].fingerprint]
    assert first.status == CaseStatus.OPEN
    assert (first.first_run_id, first.last_run_id, first.run_count) == (10, 10, 1)
    assert (first.amount_at_stake, first.currency) == (Decimal("150.00"), "EUR")
    assert (first.snapshot, first.differences) == (breaks[0].snapshot, breaks[0].differences)
    assert (first.record_ids, first.rule) == ([1, 2], "v1/pass:exact_ref")
    assert (first.definition_id, first.definition_name) == (DEF, "gl-vs-bank")
    assert first.trace_id == f"{10:032x}"
    assert first.priority == Priority.LOW
    assert first.sla_due_at > first.first_seen_at
    assert cases[breaks[1].fingerprint].priority == Priority.CRITICAL
    assert case_events(first, "case.opened").count() == 1


def test_the_same_run_delivered_twice_changes_nothing(tenant, system_actor):
    breaks = [break_input(DEF), break_input(DEF)]
    sync(tenant, system_actor, 10, breaks)
    before = list(Case.objects.order_by("id").values())
    events = AuditEvent.objects.count()

    assert sync(tenant, system_actor, 10, breaks) == {"opened": 0, "reopened": 0, "updated": 0, "resolved": 0}
    assert list(Case.objects.order_by("id").values()) == before
    assert AuditEvent.objects.count() == events


def test_the_next_run_updates_the_same_case_even_when_the_break_type_changes(tenant, system_actor):
    b = break_input(DEF, amount="150.00")
    sync(tenant, system_actor, 10, [b])
    changed = replace(b, break_type="missing_right", differences={}, amount_at_stake=Decimal("1000.00"))

    assert sync(tenant, system_actor, 11, [changed])["updated"] == 1

    case = Case.objects.get()
    assert case.break_type == "missing_right"
    assert (case.first_run_id, case.last_run_id, case.run_count) == (10, 11, 2)
    assert case.amount_at_stake == Decimal("1000.00")
    assert case_events(case, "case.break_type_changed").get().before == {"break_type": "amount_mismatch"}


def test_an_older_run_redelivered_after_a_newer_one_does_not_roll_the_case_back(tenant, system_actor):
    b = break_input(DEF)
    sync(tenant, system_actor, 10, [b])
    sync(tenant, system_actor, 11, [replace(b, break_type="date_mismatch")])

    assert sync(tenant, system_actor, 10, [b])["updated"] == 0
    assert Case.objects.get().break_type == "date_mismatch"


def test_matched_fingerprints_resolve_their_cases_auto_matched_once(tenant, system_actor):
    fixed, still_broken = break_input(DEF), break_input(DEF)
    sync(tenant, system_actor, 10, [fixed, still_broken])

    counts = sync(tenant, system_actor, 11, [still_broken], matched_fingerprints=[fixed.fingerprint])

    assert counts == {"opened": 0, "reopened": 0, "updated": 1, "resolved": 1}
    case = Case.objects.get(fingerprint=fixed.fingerprint)
    assert (case.status, case.resolution_reason, case.last_run_id) == ("resolved", "auto_matched", 11)
    assert case.trace_id == f"{11:032x}"  # the run that resolved it, as its last_run_id says
    assert case.resolved_at is not None
    assert case_events(case, "case.resolved").get().after["resolution_reason"] == "auto_matched"
    assert Case.objects.get(fingerprint=still_broken.fingerprint).status == CaseStatus.OPEN
    again = services.cases_resolve_matched(
        tenant=tenant,
        definition_id=DEF,
        run_id=11,
        trace_id=f"{11:032x}",
        matched_fingerprints=[fixed.fingerprint],
        actor=system_actor,
    )
    assert again == 0
    assert case_events(case, "case.resolved").count() == 1


def test_resolve_matched_leaves_other_definitions_and_tenants_alone(tenant, system_actor):
    b = break_input(DEF)
    sync(tenant, system_actor, 10, [b])
    other = TenantFactory(slug="other-bank")
    sync(other, system_actor, 10, [b])

    n = services.cases_resolve_matched(
        tenant=tenant,
        definition_id=DEF + 1,
        run_id=11,
        trace_id=f"{11:032x}",
        matched_fingerprints=[b.fingerprint],
        actor=system_actor,
    )
    assert n == 0
    services.cases_resolve_matched(
        tenant=tenant,
        definition_id=DEF,
        run_id=11,
        trace_id=f"{11:032x}",
        matched_fingerprints=[b.fingerprint],
        actor=system_actor,
    )
    assert Case.objects.get(tenant=tenant).status == CaseStatus.RESOLVED
    assert Case.objects.get(tenant=other).status == CaseStatus.OPEN


def test_a_resolved_case_that_breaks_again_is_reopened_not_duplicated(tenant, system_actor):
    b = break_input(DEF)
    sync(tenant, system_actor, 10, [b])
    sync(tenant, system_actor, 11, [], matched_fingerprints=[b.fingerprint])

    counts = sync(tenant, system_actor, 12, [b])

    assert counts == {"opened": 1, "reopened": 1, "updated": 0, "resolved": 0}
    case = Case.objects.get()
    assert (case.status, case.resolution_reason, case.resolved_at, case.reopen_count) == ("open", "", None, 1)
    assert (case.first_run_id, case.last_run_id, case.run_count) == (10, 12, 2)
    assert [e.action for e in case_events(case).order_by("id")] == [
        "case.opened",
        "case.resolved",
        "case.reopened",
    ]


def test_a_resolution_by_an_older_run_does_not_close_a_case_a_newer_run_saw(tenant, system_actor):
    b = break_input(DEF)
    sync(tenant, system_actor, 10, [b])
    sync(tenant, system_actor, 12, [b])

    n = services.cases_resolve_matched(
        tenant=tenant,
        definition_id=DEF,
        run_id=11,
        trace_id=f"{11:032x}",
        matched_fingerprints=[b.fingerprint],
        actor=system_actor,
    )
    assert n == 0
    assert Case.objects.get().status == CaseStatus.OPEN


def test_two_breaks_with_one_fingerprint_are_refused_loudly(tenant, system_actor):
    b = break_input(DEF)
    with pytest.raises(ApplicationError) as err:
        sync(tenant, system_actor, 10, [b, replace(b, break_type="duplicate")])
    assert err.value.code == "duplicate_fingerprint"
    assert not Case.objects.exists()


def test_an_unknown_break_type_is_refused(tenant, system_actor):
    with pytest.raises(ApplicationError) as err:
        sync(tenant, system_actor, 10, [replace(break_input(DEF), break_type="mystery")])
    assert err.value.code == "unknown_break_type"


def test_a_failed_run_opens_one_critical_case_idempotently(tenant, system_actor):
    kwargs = dict(
        tenant=tenant,
        definition_id=DEF,
        definition_name="gl-vs-bank",
        run_id=42,
        trace_id="ab" * 16,
        error="fetch_trades: upstream timed out",
        actor=system_actor,
    )
    case = services.case_open_for_failed_run(**kwargs)
    again = services.case_open_for_failed_run(**kwargs)

    assert (again.pk, Case.objects.count()) == (case.pk, 1)
    assert (case.break_type, case.priority, case.status) == ("run_failed", Priority.CRITICAL, "open")
    assert case.differences == {"error": "fetch_trades: upstream timed out"}
    assert case.snapshot["run"]["trace_id"] == "ab" * 16
    assert case_events(case, "case.opened").count() == 1


def test_carrying_thousands_of_breaks_forward_is_set_based(tenant, system_actor):
    breaks = [break_input(DEF) for _ in range(6000)]
    sync(tenant, system_actor, 10, breaks)

    with CaptureQueriesContext(connection) as queries:
        counts = sync(tenant, system_actor, 11, breaks)

    assert counts["updated"] == 6000
    # Two upsert chunks, the run's summary audit event and savepoint bookkeeping: not one per case.
    assert len(queries) < 10
    assert Case.objects.filter(run_count=2).count() == 6000


@pytest.mark.django_db(transaction=True)
def test_a_runs_audit_events_are_written_in_bulk_and_sealed_into_the_tenants_chain(system_actor):
    from jfintech.audit.chain import verify_chain

    tenant = TenantFactory(slug="chained-bank")
    breaks = [break_input(DEF) for _ in range(3)]
    sync(tenant, system_actor, 10, breaks)
    sync(tenant, system_actor, 11, [], matched_fingerprints=[breaks[0].fingerprint])

    report = verify_chain(tenant)
    assert report.ok, report.describe()
    actions = list(AuditEvent.objects.filter(tenant=tenant).order_by("seq").values_list("action", flat=True))
    assert actions.count("case.opened") == 3
    assert actions.count("case.resolved") == 1
