"""The desk says what happened, tells the requester about a rejection, and fits actions to the case."""

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from exceptions import services
from exceptions.models import Case
from exceptions.tests.factories import break_input, member
from jfintech.audit import Actor
from jfintech.tenancy.models import Role

pytestmark = pytest.mark.django_db
RECON = Actor.for_system("recon")


def _case(tenant, **kw) -> Case:
    b = break_input(1, **kw)
    services.cases_sync_for_run(
        tenant=tenant, definition_id=1, definition_name="gl-vs-bank", run_id=7, trace_id="", breaks=[b],
        actor=RECON,
    )  # fmt: skip
    return Case.objects.get(fingerprint=b.fingerprint)


def _act(client, case, **data) -> list[str]:
    response = client.post(reverse("admin:exceptions_case_act", args=[case.pk]), data, follow=True)
    assert response.status_code == 200
    return [m.message for m in get_messages(response.wsgi_request)] or [
        m.message for m in response.context["messages"]
    ]


def test_a_write_off_within_the_threshold_says_what_happened(client, tenant):
    analyst = member(tenant, Role.ANALYST, username="ana", is_staff=True)
    services.approval_threshold_set(tenant=tenant, actor=RECON, currency="GBP", amount=Decimal("10000"))
    case = _case(tenant, amount="150.00", currency="GBP")
    client.force_login(analyst)
    messages = _act(client, case, op="request", kind="write_off", note="fee")
    assert f"Case {case.pk} resolved (written off, at or below the GBP 10,000.00 threshold)." in messages


def test_the_requester_sees_the_rejection_and_its_reason_and_finds_it_in_my_requests(client, tenant):
    maker = member(tenant, Role.ANALYST, username="maker", is_staff=True)
    approver = member(tenant, Role.APPROVER, username="chief", is_staff=True)
    services.approval_threshold_set(tenant=tenant, actor=RECON, currency="EUR", amount=Decimal("10"))
    case = _case(tenant, amount="5000.00")
    other = _case(tenant, amount="6000.00")
    client.force_login(maker)
    assert "an approver decides" in _act(client, case, op="request", kind="write_off", note="lost")[0]
    client.force_login(approver)
    assert "request rejected" in _act(client, case, op="reject", note="the bank owes us this")[0]

    client.force_login(maker)
    page = client.get(reverse("admin:exceptions_case_change", args=[case.pk])).content.decode()
    assert "Your write off request was rejected" in page
    assert "the bank owes us this" in page
    listed = client.get(reverse("admin:exceptions_case_changelist"), {"my_requests": "rejected"})
    assert {c.pk for c in listed.context["cl"].result_list} == {case.pk}
    assert other.pk != case.pk


def test_a_failed_runs_case_offers_rerun_and_escalate_not_write_off(client, tenant):
    analyst = member(tenant, Role.ANALYST, username="ana", is_staff=True)
    case = services.case_open_for_failed_run(
        tenant=tenant, definition_id=3, definition_name="gl-vs-bank", run_id=9, trace_id="", error="boom",
        actor=RECON,
    )  # fmt: skip
    client.force_login(analyst)
    page = client.get(reverse("admin:exceptions_case_change", args=[case.pk])).content.decode()
    assert 'id="rerun-link"' in page
    assert reverse("admin:reconciliation_definition_change", args=[3]) in page
    assert 'id="request-form"' not in page
    assert _act(client, case, op="escalate") == [f"Case {case.pk}: escalated (priority critical)."]
    ordinary = _case(tenant)
    page = client.get(reverse("admin:exceptions_case_change", args=[ordinary.pk])).content.decode()
    assert 'id="request-form"' in page
    assert 'id="rerun-link"' not in page
