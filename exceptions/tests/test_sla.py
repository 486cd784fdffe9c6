"""SLA: due in the tenant's business days; the sweep flags breaches once; the webhook is signed, retried."""

import json
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import REGISTRY

from exceptions import services, sla
from exceptions.models import Case, WebhookDelivery
from exceptions.tests.factories import TenantFactory, break_input
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.testing.processes import wait_until


def test_due_time_counts_business_days_in_the_tenants_zone(db):
    tenant = TenantFactory(slug="ldn", timezone="Europe/London", holidays=[date(2026, 12, 28)])
    friday_3pm_london = datetime(2026, 12, 25, 15, 0, tzinfo=UTC)  # GMT in winter: same wall time
    due = sla.sla_due_at(tenant=tenant, priority="high", opened_at=friday_3pm_london)  # 2 business days
    # Sat, Sun are weekend and Mon 28th a holiday: Tue 29th is one, Wed 30th is two.
    assert due == datetime(2026, 12, 30, 15, 0, tzinfo=UTC)


def test_priority_follows_the_amount_at_stake():
    assert sla.priority_for(break_type="amount_mismatch", amount="-2500000") == "critical"
    assert sla.priority_for(break_type="amount_mismatch", amount="100000") == "high"
    assert sla.priority_for(break_type="amount_mismatch", amount="999.99") == "low"
    assert sla.priority_for(break_type="run_failed", amount=None) == "critical"


def _open_overdue_case(tenant) -> Case:
    b = break_input(1, amount="150000")
    services.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="d",
        run_id=1,
        trace_id="",
        breaks=[b],
        actor=Actor.for_system("recon"),
    )
    Case.objects.filter(fingerprint=b.fingerprint).update(sla_due_at=datetime.now(UTC) - timedelta(minutes=1))
    return Case.objects.get(fingerprint=b.fingerprint)


def _breaches(priority: str) -> float:
    return REGISTRY.get_sample_value("exception_sla_breaches_total", {"priority": priority}) or 0.0


@pytest.mark.django_db
def test_the_sweep_flags_each_breach_once_with_an_audit_event_and_a_metric(tenant):
    case = _open_overdue_case(tenant)
    before = _breaches("high")

    assert services.cases_flag_sla_breaches() == 1
    assert services.cases_flag_sla_breaches() == 0

    case.refresh_from_db()
    assert case.sla_breached_at is not None
    assert _breaches("high") == before + 1
    assert AuditEvent.objects.filter(action="case.sla_breached", object_id=str(case.pk)).count() == 1
    assert not WebhookDelivery.objects.exists()  # no endpoint configured: nothing to send


class _Receiver:
    """A real local HTTP endpoint: answers 503 for the first ``failures`` POSTs, then 204."""

    def __init__(self, failures: int):
        self.failures, self.requests = failures, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(503 if len(receiver.requests) <= receiver.failures else 204)
                self.end_headers()

            def log_message(self, *args):
                """Quiet: the default handler writes every request to stderr."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/sla"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = _Receiver(failures=2)
    yield r
    r.close()


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_breaches_are_posted_signed_and_retried_with_backoff_by_a_worker(
    celery_workers, receiver, monkeypatch
):
    tenant = TenantFactory(slug="hooked")
    services.sla_webhook_set(tenant=tenant, actor=Actor.for_system("t"), url=receiver.url, secret="s3cret")
    case = _open_overdue_case(tenant)
    monkeypatch.setattr(services, "WEBHOOK_BACKOFF_S", 0.2)  # travels with the task to the worker

    services.cases_flag_sla_breaches()

    delivery = wait_until(
        lambda: WebhookDelivery.objects.filter(status="delivered").first(),
        timeout=60,
        message="webhook not delivered",
    )
    assert delivery.attempts == 3
    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    assert {h["X-JF-Delivery"] for h, _ in receiver.requests} == {str(delivery.pk)}
    assert headers["X-JF-Signature"] == services.webhook_signature("s3cret", headers["X-JF-Timestamp"], body)
    payload = json.loads(body)
    assert (payload["event"], payload["tenant"]) == ("exception.sla_breached", "hooked")
    assert [c["case_id"] for c in payload["cases"]] == [case.pk]


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_delivery_that_never_succeeds_ends_failed(celery_workers):
    r = _Receiver(failures=100)
    try:
        tenant = TenantFactory(slug="down")
        services.sla_webhook_set(tenant=tenant, actor=Actor.for_system("t"), url=r.url, secret="x")
        delivery = WebhookDelivery.objects.create(
            tenant=tenant, event="exception.sla_breached", url=r.url, payload={"cases": []}
        )
        from exceptions import tasks

        tasks.deliver_webhook.delay(delivery.pk, 0.1, 3)
        failed = wait_until(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="failed").first(),
            timeout=60,
            message="delivery never marked failed",
        )
        assert (failed.attempts, len(r.requests), failed.last_error) == (3, 3, "HTTP 503")
    finally:
        r.close()
