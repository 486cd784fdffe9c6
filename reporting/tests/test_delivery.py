"""Scheduled delivery: the beat entry (crontab, expire_seconds, never expires), generation stored as
an audited immutable artifact (idempotent per tick), email through Django's SMTP backend to a real
local SMTP server (aiosmtpd), the webhook through the desk's outbox, and a failure that is loud
after the retries: metric, FAILED delivery with its error, a case on the desk."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from exceptions.models import Case, WebhookDelivery
from exceptions.services import sla_webhook_set
from exceptions.tests.factories import TenantFactory, break_input, member
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Role
from reporting import services
from reporting.metrics import REPORT_DELIVERIES
from reporting.models import ReportArtifact, ReportDelivery

pytestmark = pytest.mark.django_db
TICK = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=controller.port,
            EMAIL_USE_TLS=False,
            DEFAULT_FROM_EMAIL="reports@jfintech.invalid",
        ):
            yield inbox
    finally:
        controller.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def subscribed():
    from exceptions import services as desk

    tenant = TenantFactory(slug="sub-bank")
    approver = member(tenant, Role.APPROVER, username="sub-approver")
    desk.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=1,
        trace_id="",
        breaks=[break_input(1, amount="12.00"), break_input(1, amount="7.50", currency="USD")],
        actor=Actor.for_system("reconciliation"),
    )
    sub = services.subscription_save(
        tenant=tenant,
        actor=Actor.for_user(approver),
        name="morning-aging",
        kind="aging",
        filters={"by": "break_type"},
        fmt="pdf",
        recipients=["controller@bank.invalid"],
        cron="0 7 * * 1-5",
        expire_seconds=1800,
    )
    return tenant, approver, sub


def _count(channel, outcome):
    return REPORT_DELIVERIES.labels(channel=channel, outcome=outcome)._value.get()


def test_the_beat_entry_is_a_crontab_with_expire_seconds_and_an_audit_event(subscribed):
    tenant, _, sub = subscribed
    task = sub.schedule
    assert task.task == "reporting.generate_subscription"
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "7", "1-5")
    assert str(task.crontab.timezone) == tenant.timezone
    assert (task.expire_seconds, task.expires, task.enabled) == (1800, None, True)
    assert task.kwargs == f'{{"subscription_id": {sub.pk}}}'
    assert AuditEvent.objects.filter(action="report.subscription_saved", object_id=str(sub.pk)).exists()
    analyst = member(tenant, Role.ANALYST)
    with pytest.raises(ApplicationError, match="may not add report subscriptions"):
        services.subscription_save(
            tenant=tenant,
            actor=Actor.for_user(analyst),
            name="x",
            kind="aging",
            recipients=["a@b.invalid"],
            cron="0 7 * * *",
        )


def test_a_tick_is_generated_once_stored_and_emailed_to_a_real_smtp_server(
    subscribed, smtp, django_capture_on_commit_callbacks
):
    tenant, _, sub = subscribed
    with django_capture_on_commit_callbacks() as queued:
        ids = services.subscription_generate(subscription_id=sub.pk, scheduled_for=TICK, now=TICK)
    assert len(ids) == 1
    assert len(queued) == 1  # the delivery task, enqueued after commit
    assert services.subscription_generate(subscription_id=sub.pk, scheduled_for=TICK, now=TICK) == []
    artifact = ReportArtifact.objects.get(tenant=tenant)
    assert artifact.content[:5] == b"%PDF-"
    assert AuditEvent.objects.filter(action="report.artifact_generated", object_id=str(artifact.pk)).exists()
    before = _count("email", "delivered")
    assert services.delivery_send(delivery_id=ids[0], final_attempt=False) is True
    assert _count("email", "delivered") == before + 1
    ((recipients, content),) = smtp.messages
    assert recipients == ["controller@bank.invalid"]
    mail = message_from_bytes(content)
    assert "morning-aging" in mail["Subject"]
    attachment = next(p for p in mail.walk() if p.get_filename())
    assert attachment.get_payload(decode=True) == bytes(artifact.content)
    assert ReportDelivery.objects.get(pk=ids[0]).status == "delivered"


def test_an_undeliverable_email_is_retried_then_fails_loudly_with_a_case_on_the_desk(subscribed):
    _, _, sub = subscribed
    ids = services.subscription_generate(subscription_id=sub.pk, scheduled_for=TICK, now=TICK)
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=_free_port(),
        EMAIL_TIMEOUT=2,
    ):  # nothing listens there
        with pytest.raises(services.DeliveryNotMade):
            services.delivery_send(delivery_id=ids[0], final_attempt=False)
        assert ReportDelivery.objects.get(pk=ids[0]).status == "pending"
        failed_before = _count("email", "failed")
        assert services.delivery_send(delivery_id=ids[0], final_attempt=True) is False
    delivery = ReportDelivery.objects.get(pk=ids[0])
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert "ConnectionRefusedError" in delivery.last_error
    assert _count("email", "failed") == failed_before + 1
    case = Case.objects.get(pk=delivery.case_id)
    assert (case.break_type, case.status) == ("delivery_failed", "open")
    assert "morning-aging" in case.definition_name


def test_the_webhook_goes_through_the_desks_signed_outbox(subscribed):
    tenant, approver, sub = subscribed
    sub = services.subscription_save(
        tenant=tenant,
        actor=Actor.for_user(approver),
        name="morning-aging",
        kind="aging",
        fmt="csv",
        recipients=[],
        webhook=True,
        cron="0 7 * * 1-5",
    )
    sla_webhook_set(
        tenant=tenant, actor=Actor.for_system("tests"), url="https://hooks.bank.invalid/jf", secret="s" * 32
    )
    ids = services.subscription_generate(subscription_id=sub.pk, scheduled_for=TICK, now=TICK)
    assert services.delivery_send(delivery_id=ids[0], final_attempt=False) is True
    delivery = ReportDelivery.objects.get(pk=ids[0])
    assert delivery.status == "handed_off"
    outbox = WebhookDelivery.objects.get(pk=delivery.webhook_delivery_id)
    assert (outbox.event, outbox.payload["sha256"]) == ("report.generated", delivery.artifact.sha256)


def test_a_report_webhook_the_outbox_gives_up_on_fails_the_delivery_with_a_case(subscribed):
    """The outbox owns the webhook's retries; when its final POST fails, the handed-off report
    delivery becomes FAILED with its desk case and its metric, like a failed email."""
    from exceptions.services import webhook_deliver

    tenant, approver, sub = subscribed
    sub = services.subscription_save(
        tenant=tenant, actor=Actor.for_user(approver), name="morning-aging", kind="aging", fmt="csv",
        recipients=[], webhook=True, cron="0 7 * * 1-5",
    )  # fmt: skip
    dead = f"http://127.0.0.1:{_free_port()}/hook"  # nothing listens there
    sla_webhook_set(tenant=tenant, actor=Actor.for_system("tests"), url=dead, secret="s" * 32)
    ids = services.subscription_generate(subscription_id=sub.pk, scheduled_for=TICK, now=TICK)
    assert services.delivery_send(delivery_id=ids[0], final_attempt=False) is True
    delivery = ReportDelivery.objects.get(pk=ids[0])
    assert delivery.status == "handed_off"
    failed_before = _count("webhook", "failed")

    assert webhook_deliver(delivery_id=delivery.webhook_delivery_id, final_attempt=True) is False

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "ConnectionError" in delivery.last_error
    assert _count("webhook", "failed") == failed_before + 1
    case = Case.objects.get(pk=delivery.case_id)
    assert (case.break_type, case.status) == ("delivery_failed", "open")
    # Settled once: the outbox's signal for the same row again changes nothing.
    assert (
        services.delivery_failed_downstream(webhook_delivery_id=delivery.webhook_delivery_id, error="x")
        is False
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_emails_and_after_its_retries_fails_loudly(tmp_path):
    """The delivery task on a real Celery worker (its own queue and SMTP settings): one delivery
    reaches the SMTP server; one to a dead server is retried with backoff, then FAILED with a case."""
    from exceptions import services as desk
    from jfintech.testing import processes
    from reporting import tasks

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    tenant = TenantFactory(slug="worker-bank")
    approver = member(tenant, Role.APPROVER)
    desk.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="d",
        run_id=1,
        trace_id="",
        breaks=[break_input(1)],
        actor=Actor.for_system("reconciliation"),
    )
    sub = services.subscription_save(
        tenant=tenant,
        actor=Actor.for_user(approver),
        name="eod",
        kind="inventory",
        fmt="xlsx",
        recipients=["ops@bank.invalid"],
        cron="30 18 * * 1-5",
    )
    good = services.subscription_generate(subscription_id=sub.pk, scheduled_for=TICK, now=TICK)[0]
    bad = services.subscription_generate(
        subscription_id=sub.pk, scheduled_for=TICK.replace(hour=8), now=TICK
    )[0]
    queue = "report-probe"
    worker = processes.celery_worker(
        "reports", queue, tmp_path, concurrency=1, EMAIL_URL=f"smtp://127.0.0.1:{controller.port}"
    )
    worker.start()
    try:
        worker.wait_for_log(" ready.", timeout=90)
        tasks.deliver_report.apply_async((good, 0.1, 3), queue=queue)
        processes.wait_until(lambda: inbox.messages, timeout=60, message="no mail arrived")
        processes.wait_until(lambda: ReportDelivery.objects.get(pk=good).status == "delivered", timeout=30)
        controller.stop()  # the SMTP server goes away: every attempt now fails
        tasks.deliver_report.apply_async((bad, 0.1, 3), queue=queue)
        failed = processes.wait_until(
            lambda: ReportDelivery.objects.filter(pk=bad, status="failed").first(),
            timeout=90,
            message="the delivery did not fail after its retries",
        )
        assert failed.attempts == 3
        assert Case.objects.get(pk=failed.case_id).break_type == "delivery_failed"
    finally:
        worker.stop()
