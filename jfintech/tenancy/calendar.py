"""A tenant's business-day calendar: its time zone, weekend days and listed holidays.

Business dates are ``date`` objects in the tenant's own time zone (a London bank's "today"
starts at midnight in London, not UTC). Weekend days are ISO weekday numbers (Monday=1).

``business_days_between(t, start, end)`` counts business days in the half-open interval
(start, end]: Friday → next Monday is 1 (an SLA "due in 1 business day" from Friday is Monday),
and it is negative when end is before start. It inverts ``add_business_days``:
``business_days_between(t, d, add_business_days(t, d, n)) == n`` for n >= 0, and for n < 0
when ``d`` is itself a business day.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, timedelta

from django.utils import timezone


def tenant_zone(tenant) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(tenant.timezone or "UTC")


def tenant_now(tenant, now: datetime | None = None) -> datetime:
    return (now or timezone.now()).astimezone(tenant_zone(tenant))


def tenant_today(tenant, now: datetime | None = None) -> date:
    """Today's date where the tenant is (``now`` is an aware instant, for tests)."""
    return tenant_now(tenant, now).date()


def _closed(tenant) -> tuple[frozenset[int], frozenset[date]]:
    # Cached on the instance: a loop over a year of dates must not rebuild the sets each time.
    cache = getattr(tenant, "_jf_calendar", None)
    key = (tuple(tenant.weekend_days or ()), tuple(tenant.holidays or ()))
    if cache is None or cache[0] != key:
        cache = (key, (frozenset(tenant.weekend_days or ()), frozenset(tenant.holidays or ())))
        tenant._jf_calendar = cache
    return cache[1]


def is_business_day(tenant, day: date) -> bool:
    weekend, holidays = _closed(tenant)
    return day.isoweekday() not in weekend and day not in holidays


def _check_calendar_has_business_days(tenant) -> None:
    weekend, _ = _closed(tenant)
    if set(range(1, 8)) <= weekend:
        raise ValueError(f"tenant {tenant.slug}: every weekday is a weekend day")


def add_business_days(tenant, day: date, days: int) -> date:
    """The business day ``days`` business days after ``day`` (before it when negative).

    ``days == 0`` returns ``day`` itself, even when it is not a business day.
    """
    _check_calendar_has_business_days(tenant)
    step = 1 if days >= 0 else -1
    remaining = abs(days)
    current = day
    while remaining:
        current += timedelta(days=step)
        if is_business_day(tenant, current):
            remaining -= 1
    return current


def next_business_day(tenant, day: date, *, inclusive: bool = True) -> date:
    """``day`` itself if it is a business day (and inclusive), else the next one."""
    _check_calendar_has_business_days(tenant)
    current = day if inclusive else day + timedelta(days=1)
    while not is_business_day(tenant, current):
        current += timedelta(days=1)
    return current


def business_days_between(tenant, start: date, end: date) -> int:
    """Business days in (start, end]; negative when ``end < start``."""
    if end < start:
        return -business_days_between(tenant, end, start)
    weekend, holidays = _closed(tenant)
    total_days = (end - start).days
    full_weeks, rest = divmod(total_days, 7)
    count = full_weeks * (7 - len(weekend))
    for offset in range(1, rest + 1):
        if (start + timedelta(days=offset)).isoweekday() not in weekend:
            count += 1
    count -= sum(1 for h in holidays if start < h <= end and h.isoweekday() not in weekend)
    return count


def business_day_table_sql(name: str = "bd") -> str:
    """A CTE ``name(day, is_business, n, next_business)`` over every date from ``%(cal_from)s`` to
    ``%(cal_to)s``: ``n`` counts business days in (cal_from, day], so ``n(b) - n(a)`` is
    ``business_days_between(a, b)`` for a <= b; ``next_business`` is the day itself or the next
    business day (NULL past cal_to). Parameters from ``business_day_table_params``. For
    set-based SQL over many rows (reports), where calling the functions above per row is not."""
    closed = "(extract(isodow FROM g)::int = ANY(%(cal_weekend)s) OR g::date = ANY(%(cal_holidays)s::date[]))"
    return f"""{name} AS (
        SELECT g::date AS day, NOT {closed} AS is_business,
               count(*) FILTER (WHERE NOT {closed}) OVER (ORDER BY g) AS n,
               min(g::date) FILTER (WHERE NOT {closed}) OVER (
                   ORDER BY g ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS next_business
        FROM generate_series(%(cal_from)s::date, %(cal_to)s::date, interval '1 day') AS g
    )"""


def business_day_table_params(tenant, cal_from: date, cal_to: date) -> dict:
    return {
        "cal_from": cal_from,
        "cal_to": cal_to,
        "cal_weekend": sorted(tenant.weekend_days or ()),
        "cal_holidays": sorted(tenant.holidays or ()),
        "tz": tenant.timezone or "UTC",
    }
