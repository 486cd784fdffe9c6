"""`make demo`: a report subscription whose morning delivery failed, as a real one fails.

``morning-aging`` sends the aging report to the tenant's webhook, which the demo tenant never set
up: this morning's delivery is made once through the real path (``subscription_generate``, then
``delivery_send``'s final attempt), fails with "the tenant has no active webhook", and its case is
on the desk next to the breaks. Idempotent: one tick (07:00 today), generated and sent once.
"""

from __future__ import annotations

from datetime import datetime, time

from jfintech.tenancy import calendar
from jfintech.tenancy.demo import DEMO_ACTOR, demo_tenant
from reporting import services
from reporting.models import ReportDelivery, ReportSubscription

NAME = "morning-aging"


def seed_report_demo(out) -> None:
    tenant = demo_tenant()
    sub = ReportSubscription.objects.filter(tenant=tenant, name=NAME).first() or services.subscription_save(
        tenant=tenant, actor=DEMO_ACTOR, name=NAME, kind="aging", fmt="csv", webhook=True, cron="0 7 * * 1-5"
    )
    if not ReportDelivery.objects.filter(subscription=sub).exists():
        today = calendar.tenant_today(tenant)
        tick = datetime.combine(today, time(7), tzinfo=calendar.tenant_zone(tenant))
        services.subscription_generate(subscription_id=sub.pk, scheduled_for=tick)
    for delivery in ReportDelivery.objects.filter(subscription=sub, status=ReportDelivery.Status.PENDING):
        services.delivery_send(delivery_id=delivery.pk, final_attempt=True)
    for delivery in ReportDelivery.objects.filter(subscription=sub):
        out.write(
            f"demo report subscription {sub.name}: {delivery.channel} delivery {delivery.pk} "
            f"{delivery.status} ({delivery.last_error}), case {delivery.case_id}"
        )
