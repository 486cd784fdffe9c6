"""Priority and SLA due time of a case, counted in the tenant's business days and time zone.

Priority follows the amount at stake (a failed run is always critical: nothing of that run was
reconciled). The SLA gives each priority a number of business days; the due time is the same
local clock time that many business days after the case opened, in the tenant's zone, so a case
opened on Friday 15:00 in London with one business day is due Monday 15:00 London time.
Thresholds are in units of the case's currency (no FX on the desk); see docs/exceptions.md.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from exceptions.models import BreakType, Priority
from jfintech.tenancy import calendar

# Smallest amount at stake (absolute, in the case's currency) for each priority, most urgent first.
PRIORITY_THRESHOLDS: list[tuple[str, Decimal]] = [
    (Priority.CRITICAL, Decimal("1000000")),
    (Priority.HIGH, Decimal("100000")),
    (Priority.NORMAL, Decimal("1000")),
]
SLA_BUSINESS_DAYS = {Priority.CRITICAL: 1, Priority.HIGH: 2, Priority.NORMAL: 5, Priority.LOW: 10}


def priority_for(*, break_type: str, amount) -> str:
    if break_type == BreakType.RUN_FAILED:
        return Priority.CRITICAL
    if amount is None:  # e.g. a position break in quantity only: someone must still look soon
        return Priority.HIGH
    size = abs(Decimal(amount))
    for priority, floor in PRIORITY_THRESHOLDS:
        if size >= floor:
            return priority
    return Priority.LOW


def sla_due_at(*, tenant, priority: str, opened_at: datetime) -> datetime:
    local = calendar.tenant_now(tenant, opened_at)
    due_day = calendar.add_business_days(tenant, local.date(), SLA_BUSINESS_DAYS[priority])
    return datetime.combine(due_day, local.time(), tzinfo=calendar.tenant_zone(tenant))
