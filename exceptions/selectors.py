"""Reads of the exceptions app, scoped by tenant. The admin desk and the API share these."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from exceptions.models import ApprovalRequest, ApprovalStatus, Case, CaseComment, CaseStatus
from jfintech.audit.models import AuditEvent
from jfintech.tenancy import calendar

CASE_OBJECT_TYPE = Case._meta.label_lower

# Age of a case: business days from first seen to today, in the tenant's calendar.
AGE_BUCKETS: dict[str, tuple[int, int | None]] = {
    "0-1": (0, 1),
    "2-3": (2, 3),
    "4-7": (4, 7),
    "8-30": (8, 30),
    "30+": (31, None),
}


def case_list(*, tenant) -> QuerySet[Case]:
    return Case.objects.filter(tenant=tenant).select_related("assignee", "root_cause")


def case_get(*, tenant, case_id: int) -> Case | None:
    return case_list(tenant=tenant).filter(pk=case_id).first()


def case_history(*, case) -> QuerySet[AuditEvent]:
    """The case's full history: the audit events written by every service that touched it."""
    return AuditEvent.objects.filter(
        tenant_id=case.tenant_id, object_type=CASE_OBJECT_TYPE, object_id=str(case.pk)
    ).order_by("occurred_at", "id")


def case_comments(*, case) -> QuerySet[CaseComment]:
    return case.comments.select_related("author").order_by("created_at", "id")


def case_pending_approval(*, case) -> ApprovalRequest | None:
    return case.approvals.filter(status=ApprovalStatus.PENDING).first()


def approval_list(*, tenant) -> QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.filter(tenant=tenant).select_related("case", "requested_by", "decided_by")


def case_age_days(*, tenant, case, today: date | None = None) -> int:
    today = today or calendar.tenant_today(tenant)
    first = calendar.tenant_now(tenant, case.first_seen_at).date()
    return max(0, calendar.business_days_between(tenant, first, today))


def _earliest_date_with_age_at_most(tenant, today: date, days: int) -> date:
    """The earliest local date whose age (business days to today) is <= days.

    Age only grows going back in time, so walk back until it exceeds ``days`` (at most a few weeks
    of calendar days for the buckets above; cheap, and exact around weekends and holidays).
    """
    day = today
    while calendar.business_days_between(tenant, day - timedelta(days=1), today) <= days:
        day -= timedelta(days=1)
    return day


def _local_midnight(tenant, day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=calendar.tenant_zone(tenant))


def age_bucket_q(*, tenant, bucket: str, now: datetime | None = None) -> Q:
    """A Q on first_seen_at selecting the cases whose business-day age is in ``bucket``."""
    low, high = AGE_BUCKETS[bucket]
    today = calendar.tenant_today(tenant, now)
    q = Q(tenant=tenant)
    if high is not None:
        q &= Q(
            first_seen_at__gte=_local_midnight(tenant, _earliest_date_with_age_at_most(tenant, today, high))
        )
    if low > 0:
        q &= Q(
            first_seen_at__lt=_local_midnight(tenant, _earliest_date_with_age_at_most(tenant, today, low - 1))
        )
    return q


def age_q_at_least(*, tenant, days: int, now: datetime | None = None) -> Q:
    """Cases at least ``days`` business days old ("older than 2 days" = at least 3)."""
    today = calendar.tenant_today(tenant, now)
    return Q(
        tenant=tenant,
        first_seen_at__lt=_local_midnight(tenant, _earliest_date_with_age_at_most(tenant, today, days - 1)),
    )


def sla_breached_q(now: datetime | None = None) -> Q:
    """Breached now: unresolved and past due (whether or not the sweep has flagged it yet)."""
    return ~Q(status=CaseStatus.RESOLVED) & Q(sla_due_at__lt=now or timezone.now())


def desk_summary(*, tenants, now: datetime | None = None) -> dict:
    """The desk at a glance: unresolved cases by age bucket and type, SLA breaches, amount at stake.

    One aggregate query per bucket boundary set (buckets are date ranges per tenant), not per case.
    """
    now = now or timezone.now()
    tenants = list(tenants)
    unresolved = Case.objects.filter(tenant__in=tenants).exclude(status=CaseStatus.RESOLVED)
    aggregates = {}
    for bucket in AGE_BUCKETS:
        q = Q()
        for tenant in tenants:
            q |= age_bucket_q(tenant=tenant, bucket=bucket, now=now)
        aggregates[f"b:{bucket}"] = Count("id", filter=q) if tenants else Count("id", filter=Q(pk=None))
    totals = unresolved.aggregate(
        open_cases=Count("id"),
        breached=Count("id", filter=sla_breached_q(now)),
        pending_approval=Count("id", filter=Q(status=CaseStatus.PENDING_APPROVAL)),
        unassigned=Count("id", filter=Q(assignee__isnull=True)),
        **aggregates,
    )
    by_type = list(unresolved.values("break_type").annotate(n=Count("id")).order_by("-n", "break_type"))
    by_bucket_type = list(unresolved.values("break_type").annotate(**aggregates).order_by("break_type"))
    at_stake = list(
        unresolved.exclude(amount_at_stake__isnull=True)
        .values("currency")
        .annotate(total=Sum("amount_at_stake"), n=Count("id"))
        .order_by("-total")
    )
    return {
        "totals": {k: v for k, v in totals.items() if not k.startswith("b:")},
        "by_bucket": [(b, totals[f"b:{b}"]) for b in AGE_BUCKETS],
        "by_type": [(row["break_type"], row["n"]) for row in by_type],
        "by_bucket_type": [
            {"break_type": row["break_type"], "buckets": [row[f"b:{b}"] for b in AGE_BUCKETS]}
            for row in by_bucket_type
        ],
        "at_stake": at_stake,
    }


# --- Reads for reporting (reporting reads cases only through these; docs/reporting.md) ------------
# The SQL over exceptions_case and the case history lives here, with the model it reads.

# Scrape-time buckets of the platform metric exception_cases_open: calendar time since first seen
# (cheap at every scrape, the same for every tenant); the reports use business days (case_aging).
METRIC_AGE_BUCKETS = (
    ("lt_1d", "interval '0'", "interval '1 day'"),
    ("1d_3d", "interval '1 day'", "interval '3 days'"),
    ("3d_7d", "interval '3 days'", "interval '7 days'"),
    ("7d_30d", "interval '7 days'", "interval '30 days'"),
    ("ge_30d", "interval '30 days'", None),
)


def open_case_counts_by_priority_and_age(*, now=None) -> list[tuple[str, str, int, int]]:
    """(priority, age bucket, unresolved cases, of which past their SLA) over every tenant."""
    bucket_sql = " ".join(
        f"WHEN %(now)s - first_seen_at >= {low}"
        + (f" AND %(now)s - first_seen_at < {high}" if high else "")
        + f" THEN '{name}'"
        for name, low, high in METRIC_AGE_BUCKETS
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT priority, CASE {bucket_sql} ELSE 'lt_1d' END, count(*),"
            " count(*) FILTER (WHERE sla_due_at < %(now)s)"
            " FROM exceptions_case WHERE status <> 'resolved' GROUP BY 1, 2",
            {"now": now or timezone.now()},
        )
        return cursor.fetchall()
