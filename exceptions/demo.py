"""`make demo`: the demo tenant's desk — the cases its reconciliations really opened, worked a little.

Every case comes from a real run of a real definition (``reconciliation.runs.demo`` runs them on
the seeded data, over the last weeks; ``backdate_cases`` puts the cases a run opened on its day so
the desk shows every age bucket) or from a real failed report delivery (``reporting.demo``). This
step adds the desk's settings (root causes, approval thresholds) and the analyst's morning, through
the services: two cases assigned, one under investigation with a comment, one write-off waiting
for the approver. Idempotent: the morning is played once, on a desk nobody has worked yet.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from exceptions import services, sla
from exceptions.models import ApprovalRequest, BreakType, Case, CaseStatus, RootCauseCategory
from jfintech.audit import Actor
from jfintech.tenancy import calendar
from jfintech.tenancy.demo import DEMO_ACTOR, DEMO_USERS, demo_tenant
from jfintech.tenancy.models import Role

ROOT_CAUSES = [
    ("late-booking", "Late booking", "Booked in the ledger after the statement date."),
    ("bank-fee", "Bank fee / charge", "Charges deducted by the bank, not booked."),
    ("fx-rate", "FX rate difference", "Converted at a different rate on each side."),
    ("reference-typo", "Reference typo", "Same payment, mistyped reference."),
    ("failed-settlement", "Failed settlement", "Trade did not settle on the intended date."),
]


def demo_moment(tenant, day: date):
    """Now, moved back to ``day`` in the tenant's calendar (same time of day): when a demo run
    made on ``day`` would have run."""
    now = timezone.now()
    return now - (calendar.tenant_now(tenant, now).date() - day)


def backdate_cases(tenant, run_id: int, day: date) -> None:
    """Demo only: the cases run ``run_id`` opened were first seen on ``day`` (the run's day), their
    SLA counted from then."""
    seen = demo_moment(tenant, day)
    with transaction.atomic():
        for case in Case.objects.filter(tenant=tenant, first_run_id=run_id):
            due = sla.sla_due_at(tenant=tenant, priority=case.priority, opened_at=seen)
            Case.objects.filter(pk=case.pk).update(
                first_seen_at=seen, last_seen_at=seen, opened_at=seen, created_at=seen, sla_due_at=due
            )


def _open_case(tenant, break_type: str, *, definition: str = "", taken: set[int]) -> Case | None:
    """The largest open, unassigned case of ``break_type`` not picked yet (oldest on a tie)."""
    cases = Case.objects.filter(
        tenant=tenant, break_type=break_type, status=CaseStatus.OPEN, assignee__isnull=True
    ).exclude(pk__in=taken)
    if definition:
        cases = cases.filter(definition_name=definition)
    case = cases.order_by("-amount_at_stake", "first_seen_at", "pk").first()
    if case is not None:
        taken.add(case.pk)
    return case


def _analysts_morning(tenant, analyst) -> None:
    """Assign two cases, investigate one with a comment, ask the approver to write one off."""
    as_analyst = {"tenant": tenant, "actor": Actor.for_user(analyst)}
    taken: set[int] = set()
    for break_type, definition in (
        (BreakType.AMOUNT_MISMATCH, "gl-vs-bank"),
        (BreakType.QUANTITY_MISMATCH, "securities-3way"),
    ):
        if case := _open_case(tenant, break_type, definition=definition, taken=taken):
            services.case_assign(**as_analyst, case_id=case.pk, assignee=analyst)
    if case := _open_case(tenant, BreakType.DATE_MISMATCH, taken=taken):
        services.case_start_investigating(**as_analyst, user=analyst, case_id=case.pk)
        services.case_comment_add(
            **as_analyst,
            user=analyst,
            case_id=case.pk,
            body="Custodian confirms settlement moved to T+3; chasing the SSI.",
        )
    # The largest trade that never settled: above the GBP threshold, so the approver decides.
    if case := _open_case(tenant, BreakType.MISSING_RIGHT, definition="securities-3way", taken=taken):
        services.case_start_investigating(**as_analyst, user=analyst, case_id=case.pk)
        services.case_request_resolution(
            **as_analyst,
            user=analyst,
            case_id=case.pk,
            kind="write_off",
            note="Counterparty in default; the trade will not settle (ref. credit memo 7712).",
        )


def seed_demo_cases(out) -> None:
    tenant = demo_tenant()
    users = {role: get_user_model().objects.get(username=name) for role, name in DEMO_USERS.items()}
    for code, name, description in ROOT_CAUSES:
        if not RootCauseCategory.objects.filter(tenant=tenant, code=code).exists():
            services.root_cause_save(
                tenant=tenant, actor=DEMO_ACTOR, code=code, name=name, description=description
            )
    for currency, amount in (("GBP", "10000"), ("EUR", "10000"), ("USD", "12500")):
        services.approval_threshold_set(
            tenant=tenant, actor=DEMO_ACTOR, currency=currency, amount=Decimal(amount)
        )
    cases = Case.objects.filter(tenant=tenant)
    # Runs resolve cases by themselves; a person's hand shows as an assignee or an approval request.
    worked = cases.filter(assignee__isnull=False).exists()
    if not worked and not ApprovalRequest.objects.filter(tenant=tenant).exists():
        _analysts_morning(tenant, users[Role.ANALYST])
    open_n = cases.exclude(status=CaseStatus.RESOLVED).count()
    pending = ApprovalRequest.objects.filter(tenant=tenant, status="pending").count()
    types = cases.values("break_type").distinct().count()
    out.write(f"demo desk: {open_n} open cases of {types} break types, {pending} pending approval")
