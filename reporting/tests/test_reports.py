"""Every number of the aging, trends and as-of reports against the same number computed here,
independently, from the rows the test created (Python over the test's own data, with the
calendar's Python functions; never the report's SQL)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exceptions import services
from exceptions.models import Case
from exceptions.tests.factories import TenantFactory, break_input, member
from jfintech.audit import Actor
from jfintech.tenancy import calendar
from jfintech.tenancy.models import Role
from reporting import reports

pytestmark = pytest.mark.django_db
RECON = Actor.for_system("reconciliation")
BUCKETS = [("0-1", 0, 1), ("2-3", 2, 3), ("4-7", 4, 7), ("8-30", 8, 30), ("30+", 31, 10**6)]
CENTS = {"EUR": 100, "USD": 100, "JPY": 1}


def _bucket(age: int) -> str:
    return next(name for name, low, high in BUCKETS if low <= age <= high)


def _sync(tenant, breaks, run_id):
    services.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=run_id,
        trace_id="",
        breaks=breaks,
        actor=RECON,
    )
    return [Case.objects.get(tenant=tenant, fingerprint=b.fingerprint) for b in breaks]


@pytest.fixture
def bank():
    # A calendar with a holiday, so business days differ from weekdays.
    tenant = TenantFactory(slug="report-bank", timezone="Europe/London", weekend_days=[6, 7])
    tenant.holidays = [calendar.tenant_today(tenant) - timedelta(days=9)]
    tenant.save()
    people = {r: member(tenant, r, username=f"rep-{r}") for r in (Role.ANALYST, Role.APPROVER)}
    return tenant, people


def test_aging_by_type_root_cause_and_assignee_equals_an_independent_count(bank):
    tenant, people = bank
    now = timezone.now()
    specs = [
        ("amount_mismatch", "EUR", "150.25", 0),
        ("amount_mismatch", "EUR", "-20.10", 3),
        ("missing_left", "USD", "999.99", 6),
        ("missing_left", "JPY", "1200", 12),
        ("missing_right", "EUR", "5.00", 45),
        ("amount_mismatch", "USD", "70.00", 2),
    ]
    breaks = [break_input(1, break_type=t, currency=c, amount=a) for t, c, a, _ in specs]
    cases = _sync(tenant, breaks, 1)
    for case, (*_, days_ago) in zip(cases, specs, strict=True):
        Case.objects.filter(pk=case.pk).update(first_seen_at=now - timedelta(days=days_ago))
    root = services.root_cause_save(tenant=tenant, actor=RECON, code="late-booking", name="Late booking")
    services.case_set_root_cause(tenant=tenant, actor=RECON, case_id=cases[1].pk, root_cause_id=root.pk)
    services.case_assign(tenant=tenant, actor=RECON, case_id=cases[2].pk, assignee=people[Role.ANALYST])
    services.case_resolve(tenant=tenant, actor=RECON, case_id=cases[5].pk, reason="timing")  # not aged

    today = calendar.tenant_today(tenant, now)
    expected = {
        "break_type": defaultdict(lambda: [0, Decimal(0)]),
        "root_cause": defaultdict(lambda: [0, Decimal(0)]),
        "assignee": defaultdict(lambda: [0, Decimal(0)]),
    }
    for case in (
        Case.objects.filter(tenant=tenant).exclude(status="resolved").select_related("root_cause", "assignee")
    ):
        first = calendar.tenant_now(tenant, case.first_seen_at).date()
        bucket = _bucket(max(0, calendar.business_days_between(tenant, first, today)))
        dims = {
            "break_type": case.break_type,
            "root_cause": case.root_cause.code if case.root_cause else "(none)",
            "assignee": case.assignee.username if case.assignee else "(none)",
        }
        for by, value in dims.items():
            cell = expected[by][(value, bucket, case.currency)]
            cell[0] += 1
            cell[1] += case.amount_at_stake * CENTS[case.currency]
    for by in ("break_type", "root_cause", "assignee"):
        report = reports.aging_report(tenant=tenant, by=by, user=people[Role.ANALYST], now=now)
        got = {(r[0], r[1], r[2]): [r[3], Decimal(r[4])] for r in report.tables[0].rows}
        assert got == {k: v for k, v in expected[by].items()}, by
        assert "<svg" in report.charts[0][1]
    assert sum(v[0] for v in expected["break_type"].values()) == 5


def _state(case, tenant, at):
    first = calendar.tenant_now(tenant, case.first_seen_at).date()
    return [
        case.pk,
        case.break_type,
        case.status,
        case.assignee.username if case.assignee else "",
        case.priority,
        case.root_cause.code if case.root_cause else "",
        case.currency,
        int(case.amount_at_stake * CENTS[case.currency]) if case.amount_at_stake is not None else None,
        case.reference,
        case.account,
        case.definition_name,
        case.first_seen_at,
        max(0, calendar.business_days_between(tenant, first, calendar.tenant_today(tenant, at))),
    ]


def test_the_inventory_as_of_t_equals_the_snapshot_taken_at_t_whatever_changed_since(bank):
    tenant, people = bank
    analyst, approver = people[Role.ANALYST], people[Role.APPROVER]
    services.approval_threshold_set(tenant=tenant, actor=RECON, currency="EUR", amount=Decimal("10"))
    breaks = [break_input(1, amount=a) for a in ("150.00", "2500.00", "40.00", "75.50", "1000000.00")]
    breaks.append(break_input(1, amount="12.00", break_type="missing_left"))
    cases = _sync(tenant, breaks, 1)
    Case.objects.filter(pk=cases[0].pk).update(first_seen_at=timezone.now() - timedelta(days=6))
    services.case_assign(tenant=tenant, actor=RECON, case_id=cases[1].pk, assignee=analyst)
    services.case_set_priority(tenant=tenant, actor=RECON, case_id=cases[2].pk, priority="critical")
    services.case_resolve(tenant=tenant, actor=RECON, case_id=cases[3].pk, reason="timing")
    services.case_resolve(tenant=tenant, actor=RECON, case_id=cases[5].pk, reason="fixed_at_source")
    _sync(tenant, [break_input(1, key=breaks[2].reference, amount="41.00")], 2)  # seen again, new amount

    at = timezone.now()
    snapshot = [
        _state(c, tenant, at)
        for c in Case.objects.filter(tenant=tenant)
        .exclude(status="resolved")
        .select_related("assignee", "root_cause")
        .order_by("pk")
    ]
    assert len(snapshot) == 4

    # After T: assign, reassign, resolve, reopen (by a person and by a run), write off with
    # four eyes, change priority, and a run that sees an item again with another amount.
    services.case_assign(tenant=tenant, actor=RECON, case_id=cases[0].pk, assignee=analyst)
    services.case_assign(tenant=tenant, actor=RECON, case_id=cases[1].pk, assignee=approver)
    services.case_set_priority(tenant=tenant, actor=RECON, case_id=cases[1].pk, priority="low")
    services.case_resolve(tenant=tenant, actor=RECON, case_id=cases[2].pk, reason="not_a_break")
    services.case_reopen(tenant=tenant, actor=RECON, case_id=cases[3].pk)
    maker = Actor.for_user(analyst)
    request = services.case_request_resolution(
        tenant=tenant, actor=maker, user=analyst, case_id=cases[4].pk, kind="write_off", note="uncollectable"
    )
    services.approval_decide(
        tenant=tenant,
        actor=Actor.for_user(approver),
        user=approver,
        approval_id=request["approval"].pk,
        approve=True,
        note="ok",
    )
    changed = break_input(1, key=breaks[0].reference, amount="999.00")
    _sync(tenant, [changed, breaks[5]], 3)  # case 0 amount changes; case 5 reopens
    assert Case.objects.get(pk=cases[0].pk).amount_at_stake == Decimal("999.00")
    assert Case.objects.get(pk=cases[5].pk).status == "open"

    report = reports.inventory_report(tenant=tenant, at=at, user=analyst, now=timezone.now())
    assert report.tables[0].rows == snapshot
    now_report = reports.inventory_report(tenant=tenant, at=timezone.now(), user=analyst, now=timezone.now())
    assert now_report.tables[0].rows != snapshot  # the changes are there when asked for now


class _Clock:
    """timezone.now() for the services (auto_now_add included): the history happens on chosen days."""

    def __init__(self, monkeypatch, start: datetime):
        self.now = start
        monkeypatch.setattr(timezone, "now", lambda: self.now)

    def at(self, when: datetime):
        self.now = when


def test_trends_flow_resolution_times_sla_and_amount_at_stake(bank, monkeypatch):
    tenant, _ = bank
    tenant.weekend_days, tenant.holidays = [6, 7], []
    tenant.save()
    monday = date(2026, 11, 2)
    at = lambda d, h: datetime(d.year, d.month, d.day, h, tzinfo=UTC)  # noqa: E731 (London = UTC in Nov)
    clock = _Clock(monkeypatch, at(monday, 9))
    b = [
        break_input(1, amount="100.00"),
        break_input(1, amount="2000.00"),
        break_input(1, amount="7.00", currency="USD"),
    ]
    cases = _sync(tenant, b, 1)  # Mon 09:00: three opened
    clock.at(at(monday + timedelta(days=1), 15))  # Tue 15:00: case 0 resolved (30 h)
    services.case_resolve(tenant=tenant, actor=RECON, case_id=cases[0].pk, reason="timing")
    clock.at(at(monday + timedelta(days=5), 10))  # Sat: reopened by a run, counts on Monday
    _sync(tenant, [b[0]], 2)
    clock.at(at(monday + timedelta(days=7), 11))  # next Mon 11:00: case 1 resolved (170 h), case 0 too (49 h)
    services.case_resolve(tenant=tenant, actor=RECON, case_id=cases[1].pk, reason="timing")
    services.case_resolve(tenant=tenant, actor=RECON, case_id=cases[0].pk, reason="fixed_at_source")
    clock.at(at(monday + timedelta(days=8), 12))

    report = reports.trends_report(
        tenant=tenant, date_from=monday, date_to=monday + timedelta(days=8), user=None, now=clock.now
    )
    flow = {row[0]: row[1:] for row in report.tables[1].rows}
    d = lambda n: monday + timedelta(days=n)  # noqa: E731
    assert flow == {
        d(0): [3, 0, 0, 3],
        d(1): [0, 0, 1, 2],
        d(2): [0, 0, 0, 2],
        d(3): [0, 0, 0, 2],
        d(4): [0, 0, 0, 2],
        d(7): [0, 1, 2, 1],
        d(8): [0, 0, 0, 1],
    }
    sla_due = {c.pk: c.sla_due_at for c in cases}  # priority from amount: 100 normal (5 days), 2000 normal
    times = {(r[0], r[1]): r[2:] for r in report.tables[2].rows}
    hours = [Decimal(30), Decimal(170), Decimal(49)]
    mean = sum(hours) / 3
    ordered = sorted(hours)
    p90 = ordered[1] + (ordered[2] - ordered[1]) * Decimal("0.8")  # percentile_cont: linear interpolation
    within = sum(
        1 for h, c in ((30, cases[0]), (170, cases[1])) if at(monday, 9) + timedelta(hours=h) <= sla_due[c.pk]
    )
    reopened_due = calendar.add_business_days(tenant, d(5), 5)  # the reopen restarted the SLA (Sat 10:00 +5)
    within += at(d(7), 11) <= datetime.combine(reopened_due, datetime.min.time().replace(hour=10), tzinfo=UTC)
    assert list(times) == [("amount_mismatch", "(none)")]
    resolved, mean_h, p90_h, with_sla, within_sla, share = times[("amount_mismatch", "(none)")]
    assert (resolved, with_sla, within_sla) == (3, 3, within)
    assert (mean_h, p90_h) == (round(mean, 2), round(float(p90), 2))
    assert share == f"{within / 3:.4f}"
    stake = {(row[0], row[1]): row[2] for row in report.tables[3].rows}
    eur = {d(0): 210000, d(1): 200000, d(2): 200000, d(3): 200000, d(4): 200000, d(7): 0, d(8): 0}
    assert {k[1]: v for k, v in stake.items() if k[0] == "EUR"} == eur
    assert {k[1]: v for k, v in stake.items() if k[0] == "USD"} == {day: 700 for day in eur}
