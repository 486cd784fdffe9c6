"""Reads of the exceptions app, scoped by tenant. The admin desk and the API share these."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from exceptions.models import ApprovalRequest, ApprovalStatus, Case, CaseComment, CaseStatus, SlaWebhook
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


def sla_webhook_is_active(*, tenant) -> bool:
    """Whether the tenant has an active webhook (SLA breaches and report deliveries go to it)."""
    return SlaWebhook.objects.filter(tenant=tenant, is_active=True).exists()


def case_list(*, tenant) -> QuerySet[Case]:
    return Case.objects.filter(tenant=tenant).select_related("assignee", "root_cause")


def case_get(*, tenant, case_id: int) -> Case | None:
    return case_list(tenant=tenant).filter(pk=case_id).first()


def case_id_of_break() -> Subquery:
    """For ``.annotate(case_id=...)`` on a queryset of breaks (rows with ``tenant`` and
    ``fingerprint``): the id of the break's case, one per tenant and fingerprint (NULL if none)."""
    return Subquery(
        Case.objects.filter(tenant=OuterRef("tenant"), fingerprint=OuterRef("fingerprint")).values("pk")[:1]
    )


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


def _user_table() -> tuple[str, str]:
    from django.contrib.auth import get_user_model

    user = get_user_model()
    return user._meta.db_table, user._meta.get_field(user.USERNAME_FIELD).column


def _first_seen_date(tenant) -> date | None:
    first = (
        Case.objects.filter(tenant=tenant).order_by("first_seen_at").values_list("first_seen_at", flat=True)
    )
    first = first.first()
    return calendar.tenant_now(tenant, first).date() if first else None


def _rows(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


AGING_DIMENSIONS = {
    "break_type": "c.break_type",
    "root_cause": "coalesce(rc.code, '')",
    "assignee": "coalesce(u.{username}, '')",
}


def _age_bucket_sql(age: str) -> str:
    whens = " ".join(
        f"WHEN {age} >= {low}" + (f" AND {age} <= {high}" if high is not None else "") + f" THEN '{name}'"
        for name, (low, high) in AGE_BUCKETS.items()
    )
    return f"CASE {whens} END"


def case_aging(*, tenant, by: str, now: datetime | None = None) -> list[dict]:
    """Unresolved cases by business-day age bucket (AGE_BUCKETS, the tenant's calendar) x ``by``
    (break_type, root_cause or assignee) x currency: {dimension, bucket, currency, cases, amount}.
    One GROUP BY in PostgreSQL; the calendar is a generated table (calendar.business_day_table_sql)."""
    now = now or timezone.now()
    first = _first_seen_date(tenant)
    if first is None:
        return []
    today = calendar.tenant_today(tenant, now)
    users, username = _user_table()
    dimension = AGING_DIMENSIONS[by].format(username=username)
    params = calendar.business_day_table_params(tenant, min(first, today), today)
    params.update(tenant=tenant.pk, now=now, today=today)
    age = "greatest(0, (SELECT n FROM bd WHERE day = %(today)s) - f.n)"
    return _rows(
        f"""WITH {calendar.business_day_table_sql("bd")}
        SELECT {dimension} AS dimension, {_age_bucket_sql(age)} AS bucket, c.currency,
               count(*) AS cases, sum(c.amount_at_stake) AS amount
        FROM exceptions_case c
        JOIN bd f ON f.day = (c.first_seen_at AT TIME ZONE %(tz)s)::date
        LEFT JOIN exceptions_rootcausecategory rc ON rc.id = c.root_cause_id
        LEFT JOIN {users} u ON u.id = c.assignee_id
        WHERE c.tenant_id = %(tenant)s AND c.status <> 'resolved' AND c.first_seen_at <= %(now)s
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
        params,
    )


# The fields of a case the history carries (audit before/after of every service that changes one).
AS_OF_FIELDS = (
    "status",
    "assignee_id",
    "priority",
    "amount_at_stake",
    "break_type",
    "root_cause_id",
    "sla_due_at",
)


def case_inventory_as_of(*, tenant, at: datetime) -> list[dict]:
    """The unresolved cases exactly as they stood at ``at``, re-created from the case history.

    For each field: the ``after`` of the last event at or before ``at`` that names it; failing
    that, the ``before`` of the first event after ``at`` that names it (what it was until then);
    failing both, the current value (never changed since). One pass over the tenant's case events
    (jsonb_each + DISTINCT ON), not a lookup per case. Age: business days from first seen to ``at``.
    """
    first = _first_seen_date(tenant)
    if first is None:
        return []
    day = calendar.tenant_today(tenant, at)
    users, username = _user_table()
    params = calendar.business_day_table_params(tenant, min(first, day), day)
    params.update(tenant=tenant.pk, at=at, day=day, fields=list(AS_OF_FIELDS), object_type=CASE_OBJECT_TYPE)
    pivot = ", ".join(f"(array_agg(value) FILTER (WHERE key = '{f}'))[1] AS {f}" for f in AS_OF_FIELDS)
    field = {
        f: f"CASE WHEN k.{f} IS NOT NULL THEN k.{f} #>> '{{}}' ELSE c.{f}::text END" for f in AS_OF_FIELDS
    }
    return _rows(
        f"""WITH {calendar.business_day_table_sql("bd")},
        ev AS (
            SELECT e.object_id::bigint AS case_id, e.occurred_at AS t, e.id, e.before, e.after
            FROM jfintech_auditevent e
            WHERE e.tenant_id = %(tenant)s AND e.object_type = %(object_type)s
        ), known AS (
            SELECT DISTINCT ON (case_id, key) case_id, key, value FROM (
                SELECT case_id, kv.key, kv.value, 0 AS rank, t, id FROM ev, jsonb_each(ev.after) kv
                WHERE ev.t <= %(at)s AND jsonb_typeof(ev.after) = 'object' AND kv.key = ANY(%(fields)s)
                UNION ALL
                SELECT case_id, kv.key, kv.value, 1, t, id FROM ev, jsonb_each(ev.before) kv
                WHERE ev.t > %(at)s AND jsonb_typeof(ev.before) = 'object' AND kv.key = ANY(%(fields)s)
            ) x
            ORDER BY case_id, key, rank,
                CASE WHEN rank = 0 THEN t END DESC, CASE WHEN rank = 0 THEN id END DESC,
                CASE WHEN rank = 1 THEN t END, CASE WHEN rank = 1 THEN id END
        ), k AS (SELECT case_id, {pivot} FROM known GROUP BY case_id),
        state AS (
            SELECT c.id AS case_id, c.definition_name, c.reference, c.account, c.currency,
                   c.first_seen_at, {field["status"]} AS status, {field["assignee_id"]} AS assignee_id,
                   {field["priority"]} AS priority, ({field["amount_at_stake"]})::numeric AS amount_at_stake,
                   {field["break_type"]} AS break_type, {field["root_cause_id"]} AS root_cause_id,
                   ({field["sla_due_at"]})::timestamptz AS sla_due_at
            FROM exceptions_case c LEFT JOIN k ON k.case_id = c.id
            WHERE c.tenant_id = %(tenant)s AND c.first_seen_at <= %(at)s
        )
        SELECT s.case_id, s.break_type, s.status, u.{username} AS assignee, s.priority, s.currency,
               s.amount_at_stake, s.reference, s.account, s.definition_name, rc.code AS root_cause,
               s.first_seen_at, s.sla_due_at,
               greatest(0, (SELECT n FROM bd WHERE day = %(day)s) - f.n) AS age_days
        FROM state s
        JOIN bd f ON f.day = (s.first_seen_at AT TIME ZONE %(tz)s)::date
        LEFT JOIN {users} u ON u.id = s.assignee_id::bigint
        LEFT JOIN exceptions_rootcausecategory rc ON rc.id = s.root_cause_id::bigint
        WHERE s.status <> 'resolved'
        ORDER BY s.case_id""",
        params,
    )


# A case's open periods from its history: an event opens one when the case is first opened or goes
# from resolved to anything else (a run's reopen, a person's, an undone decision); it closes one
# when the case goes to resolved (a person, an approval, a run's auto-match).
#
# The trends report's three aggregates (flow, amount at stake, resolution times) share one pass over
# the tenant's case history: one sort by case and time, the period windows once, the result
# materialized narrow, then three small aggregates over it (docs/reporting.md, Benchmark). Events
# that neither open, resolve, change the amount nor set an SLA due time cannot move any of them and
# are dropped before the sort.
_TRENDS_SQL = """
ev AS (
    -- Only the fields the aggregates need: narrow rows sort in memory, whole JSON documents spill.
    SELECT * FROM (
        SELECT e.object_id::bigint AS case_id, e.occurred_at AS t, e.id,
               e.action = 'case.opened' AS new_case, e.action = 'case.amount_changed' AS amount_changed,
               e.after->>'amount_at_stake' AS after_amount, e.before->>'amount_at_stake' AS before_amount,
               e.after->>'sla_due_at' AS after_due, (e.occurred_at AT TIME ZONE %(tz)s)::date AS local_day,
               (e.action = 'case.opened' OR (e.before->>'status' = 'resolved'
                    AND coalesce(e.after->>'status', 'resolved') <> 'resolved')) AS opens,
               (e.after->>'status' = 'resolved'
                    AND coalesce(e.before->>'status', '') <> 'resolved') AS resolves
        FROM jfintech_auditevent e
        WHERE e.tenant_id = %(tenant)s AND e.object_type = %(object_type)s AND e.occurred_at < %(until)s
    ) e
    WHERE opens OR resolves OR amount_changed OR after_due IS NOT NULL
), seg AS (
    -- The JSON's amounts become one delta here: what goes through the sort stays narrow.
    SELECT ev.case_id, ev.t, ev.id, ev.new_case, ev.amount_changed, ev.after_due, ev.local_day,
           ev.opens, ev.resolves, c.id IS NOT NULL AS has_case, c.currency, c.break_type, c.root_cause_id,
           CASE WHEN opens THEN coalesce(after_amount::numeric, c.amount_at_stake, 0)
                WHEN amount_changed
                    THEN coalesce(after_amount::numeric, 0) - coalesce(before_amount::numeric, 0)
                ELSE 0 END AS delta
    FROM ev LEFT JOIN exceptions_case c ON c.id = ev.case_id
), marks AS (
    -- One window (case, then time) for every running figure: the period number, its start, the
    -- deltas summed before each event, how many events set an SLA due time up to it.
    SELECT seg.*, count(*) FILTER (WHERE opens) OVER w AS period,
           max(t) FILTER (WHERE opens) OVER w AS started,
           coalesce(sum(delta) OVER w, 0) - delta AS sum_before,
           count(after_due) OVER w AS dues_set
    FROM seg WINDOW w AS (PARTITION BY case_id ORDER BY t, id)
), periods AS MATERIALIZED (
    -- Over the same window (no re-sort), the latest event of a kind is the max of an array led
    -- by a running count: the period's opening event (its sum_before, subtracted: what the period
    -- held before this event) and the last SLA due time set (in force if set in this period).
    SELECT case_id, t, local_day, new_case, amount_changed, opens, resolves, period, has_case,
           currency, break_type, root_cause_id, delta, started,
           sum_before - coalesce(opening[2], 0) AS before_this,
           CASE WHEN last_due[2] = period::text THEN last_due[3] END AS due
    FROM (
        SELECT marks.*,
               max(ARRAY[period, sum_before]) FILTER (WHERE opens) OVER w AS opening,
               max(ARRAY[lpad(dues_set::text, 20, '0'), period::text, after_due])
                   FILTER (WHERE after_due IS NOT NULL) OVER w AS last_due
        FROM marks WINDOW w AS (PARTITION BY case_id ORDER BY t, id)
    ) m
), flow_day AS (
    -- Counted per calendar day first, then rolled to business days: the calendar joins a few rows.
    SELECT b.next_business AS day, sum(opened)::bigint AS opened, sum(reopened)::bigint AS reopened,
           sum(resolved)::bigint AS resolved
    FROM (
        SELECT local_day, count(*) FILTER (WHERE new_case) AS opened,
               count(*) FILTER (WHERE opens AND NOT new_case) AS reopened,
               count(*) FILTER (WHERE resolves) AS resolved
        FROM periods WHERE opens OR resolves GROUP BY 1
    ) x JOIN bd b ON b.day = x.local_day
    GROUP BY 1
), amount_day AS (
    SELECT b.next_business AS day, x.currency, sum(x.delta) AS delta
    FROM (
        SELECT local_day, currency,
               sum(CASE WHEN resolves THEN -coalesce(before_this, 0) ELSE delta END) AS delta
        FROM periods WHERE has_case AND (opens OR resolves OR amount_changed)
        GROUP BY 1, 2
    ) x JOIN bd b ON b.day = x.local_day
    GROUP BY 1, 2
), flow AS (
    -- Unresolved at a day's end: the running sum over every business day up to it (one window).
    SELECT d.day, coalesce(p.opened, 0) AS opened, coalesce(p.reopened, 0) AS reopened,
           coalesce(p.resolved, 0) AS resolved,
           sum(coalesce(p.opened + p.reopened - p.resolved, 0)) OVER (ORDER BY d.day) AS unresolved
    FROM bd d LEFT JOIN flow_day p ON p.day = d.day
    WHERE d.is_business AND d.day <= %(date_to)s
), at_stake AS (
    SELECT d.day, cur.currency,
           sum(coalesce(q.delta, 0)) OVER (PARTITION BY cur.currency ORDER BY d.day) AS amount
    FROM bd d CROSS JOIN (SELECT DISTINCT currency FROM amount_day) cur
    LEFT JOIN amount_day q ON q.day = d.day AND q.currency = cur.currency
    WHERE d.is_business AND d.day <= %(date_to)s
), resolved AS (
    SELECT p.t, p.break_type, p.root_cause_id, extract(epoch FROM p.t - p.started) / 3600 AS hours,
           p.due::timestamptz AS due
    FROM periods p
    WHERE p.resolves AND p.period > 0 AND p.has_case AND p.local_day BETWEEN %(date_from)s AND %(date_to)s
)"""

_TRENDS_PARTS = {
    "flow": ("day", "opened", "reopened", "resolved", "unresolved"),
    "amount_at_stake": ("day", "currency", "amount"),
    "resolution_times": (
        "break_type", "root_cause", "resolved", "mean_hours", "p90_hours", "with_sla", "within_sla"
    ),
}  # fmt: skip


def case_trends(*, tenant, date_from: date, date_to: date) -> dict[str, list[dict]]:
    """The trends over [date_from, date_to] from the case history, in one statement:

    - ``flow``: per business day, cases opened (new), reopened and resolved, and unresolved at the
      end of the day. An event on a closed day counts on the next business day.
    - ``amount_at_stake``: per currency and business day, the amount at stake of the cases
      unresolved at the day's end. Deltas from the history: + the amount an open period starts
      with, the change of a ``case.amount_changed``, minus what the period held when it is
      resolved; summed up to each day.
    - ``resolution_times``: open periods resolved in the window, by break type and root cause (the
      case's current ones): how many, mean and p90 hours from the period's start to its resolution,
      and how many were resolved by the SLA due time in force at the resolution (the last one the
      period set)."""
    first = _first_seen_date(tenant)
    if first is None:
        return {part: [] for part in _TRENDS_PARTS}
    # Up to a week past date_to, so an event on a closing weekend rolls to its next business day.
    params = calendar.business_day_table_params(tenant, min(first, date_from), date_to + timedelta(days=7))
    until = datetime.combine(date_to + timedelta(days=1), time(0), tzinfo=calendar.tenant_zone(tenant))
    params.update(
        tenant=tenant.pk, date_from=date_from, date_to=date_to, until=until, object_type=CASE_OBJECT_TYPE
    )
    sql = f"""WITH {calendar.business_day_table_sql("bd")}, {_TRENDS_SQL}
        SELECT 'flow' AS part, day, NULL::text AS currency, NULL::text AS break_type,
               NULL::text AS root_cause, opened, reopened, resolved, unresolved, NULL::numeric AS amount,
               NULL::numeric AS mean_hours, NULL::float8 AS p90_hours, NULL::bigint AS with_sla,
               NULL::bigint AS within_sla
        FROM flow WHERE day >= %(date_from)s
        UNION ALL
        SELECT 'amount_at_stake', day, currency, NULL, NULL, NULL, NULL, NULL, NULL, amount, NULL, NULL,
               NULL, NULL
        FROM at_stake WHERE day >= %(date_from)s
        UNION ALL
        SELECT 'resolution_times', NULL, NULL, r.break_type, coalesce(rc.code, ''), NULL, NULL,
               count(*), NULL, NULL, avg(r.hours),
               percentile_cont(0.9) WITHIN GROUP (ORDER BY r.hours),
               count(*) FILTER (WHERE r.due IS NOT NULL), count(*) FILTER (WHERE r.t <= r.due)
        FROM resolved r LEFT JOIN exceptions_rootcausecategory rc ON rc.id = r.root_cause_id
        GROUP BY r.break_type, coalesce(rc.code, '')
        ORDER BY part, currency, break_type, root_cause, day"""
    trends = {part: [] for part in _TRENDS_PARTS}
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The one sort and the materialized periods stay in memory (1.4M events: ~250 MB). No
            # JIT: at 1M cases its compilation alone took 2.7 s of a statement that runs in less.
            cursor.execute("SET LOCAL work_mem = '256MB'; SET LOCAL jit = off")
        for row in _rows(sql, params):
            trends[row["part"]].append({k: row[k] for k in _TRENDS_PARTS[row["part"]]})
    return trends


def case_decisions(*, tenant, definition_id: int | None, since: datetime, until: datetime) -> list[dict]:
    """Four-eyes decisions (write-offs, force-matches, undos) decided in [since, until): maker,
    checker, amount; in the order they were decided."""
    qs = ApprovalRequest.objects.filter(tenant=tenant, decided_at__gte=since, decided_at__lt=until).exclude(
        status=ApprovalStatus.PENDING
    )
    if definition_id is not None:
        qs = qs.filter(case__definition_id=definition_id)
    return list(
        qs.order_by("decided_at", "id").values(
            "id", "case_id", "kind", "status", "currency", "amount", "requested_by_display",
            "requested_at", "decided_by_display", "decided_at", "note", "decision_note",
        )
    )  # fmt: skip


def case_export_rows(*, tenant, status: str | None = None, definition_id: int | None = None):
    """The case list for exports, as tuples (iterate with ``.iterator()``: a server-side cursor)."""
    qs = Case.objects.filter(tenant=tenant)
    if status == "unresolved":
        qs = qs.exclude(status=CaseStatus.RESOLVED)
    elif status:
        qs = qs.filter(status=status)
    if definition_id is not None:
        qs = qs.filter(definition_id=definition_id)
    return qs.order_by("id").values_list(*CASE_EXPORT_COLUMNS)


CASE_EXPORT_COLUMNS = (
    "id", "break_type", "status", "priority", "currency", "amount_at_stake", "reference", "account",
    "definition_name", "assignee__username", "root_cause__code", "first_seen_at", "sla_due_at",
)  # fmt: skip
