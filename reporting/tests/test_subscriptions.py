"""Report subscriptions are created and changed by people, in the admin and over the API, through
reporting.services.subscription_save: its validation (the report's filters, the cron, the emails,
the tenant's webhook), its beat entry and its audit event; deactivating disables the beat entry."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from exceptions.services import sla_webhook_set
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Role
from jfintech.tests.conftest import client_for
from jfintech.tests.factories import TenantFactory, member
from reporting import services
from reporting.models import ReportSubscription

pytestmark = pytest.mark.django_db
SYSTEM = Actor.for_system("tests")
API = "/api/v1/reports/subscriptions/"
BODY = {
    "name": "morning-aging",
    "kind": "aging",
    "filters": {"by": "root_cause"},
    "format": "csv",
    "recipients": ["controller@bank.example", "ops@bank.example"],
    "cron": "0 7 * * 1-5",
    "expire_seconds": 1800,
}


@pytest.fixture
def bank():
    tenant = TenantFactory(slug="sub-a", timezone="Europe/London")
    people = {r: member(tenant, r, is_staff=True) for r in (Role.ANALYST, Role.APPROVER, Role.ADMIN)}
    return tenant, people


def _admin(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _events(action: str, sub) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, object_id=str(sub.pk)).order_by("id"))


def _form(tenant, **overrides) -> dict:
    data = {
        "tenant": tenant.pk,
        "name": "weekly-trends",
        "kind": "trends",
        "filters": '{"from": "2026-11-01", "to": "2026-11-30"}',
        "format": "pdf",
        "cron": "30 6 * * 1",
        "expire_seconds": "900",
        "recipients": "controller@bank.example\nops@bank.example",
        "is_active": "on",
    }
    return {**data, **overrides}


# --- the admin ------------------------------------------------------------------------------------


def test_a_tenant_admin_adds_and_changes_a_subscription_in_the_admin_through_the_service(bank):
    tenant, people = bank
    client = _admin(people[Role.ADMIN])
    response = client.post(reverse("admin:reporting_reportsubscription_add"), _form(tenant))
    assert response.status_code == 302, response.content[:2000]
    sub = ReportSubscription.objects.get(tenant=tenant, name="weekly-trends")
    assert (sub.kind, sub.format, sub.filters) == (
        "trends",
        "pdf",
        {"from": "2026-11-01", "to": "2026-11-30"},
    )
    assert sub.recipients == ["controller@bank.example", "ops@bank.example"]
    task = sub.schedule
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "6", "1")
    assert str(task.crontab.timezone) == "Europe/London"
    assert (task.expire_seconds, task.expires, task.enabled) == (900, None, True)
    assert task.task == "reporting.generate_subscription"
    [created] = _events("report.subscription_saved", sub)
    assert created.before is None
    assert created.after["cron"] == "30 6 * * 1"
    assert (created.actor_kind, created.actor_id) == ("user", str(people[Role.ADMIN].pk))

    url = reverse("admin:reporting_reportsubscription_change", args=[sub.pk])
    page = client.get(url)
    assert b'value="30 6 * * 1"' in page.content  # the form shows the beat entry's schedule
    changed = _form(tenant, cron="0 8 * * 1-5", recipients="cfo@bank.example", is_active="")
    changed.pop("tenant"), changed.pop("name")  # read-only on change
    response = client.post(url, changed)
    assert response.status_code == 302, response.content[:2000]
    sub.refresh_from_db()
    task = PeriodicTask.objects.get(pk=task.pk)  # the same beat entry, changed
    assert (sub.recipients, sub.is_active) == (["cfo@bank.example"], False)
    assert (task.crontab.hour, task.crontab.day_of_week, task.enabled) == ("8", "1-5", False)
    _first, second = _events("report.subscription_saved", sub)
    assert (second.before["cron"], second.after["cron"]) == ("30 6 * * 1", "0 8 * * 1-5")
    assert (second.before["is_active"], second.after["is_active"]) == (True, False)


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"cron": "0 25 * * *"}, "cron", "cron"),
        ({"cron": "0 7 * *"}, "cron", "five fields"),
        ({"recipients": "controller@bank.example\nnot-an-address"}, "recipients", "not-an-address"),
        ({"filters": '{"by": "break_type"}'}, None, "takes the filters from, to"),
        ({"filters": '{"from": "2026-13-01"}'}, None, "'from' must be a date"),
        ({"webhook": "on"}, "webhook", "no active webhook"),
        ({"expire_seconds": "0"}, "expire_seconds", "expire_seconds"),
    ],
)
def test_the_admin_form_shows_the_services_refusals_as_form_errors(bank, overrides, field, says):
    tenant, people = bank
    response = _admin(people[Role.ADMIN]).post(
        reverse("admin:reporting_reportsubscription_add"), _form(tenant, **overrides)
    )
    assert response.status_code == 200  # the form again, with its errors
    form = response.context["adminform"].form
    errors = form.errors.get(field or "__all__", [])
    assert any(says in e for e in errors), form.errors
    assert not ReportSubscription.objects.exists()
    assert not PeriodicTask.objects.filter(task=services.DELIVERY_TASK).exists()


def test_an_analyst_sees_subscriptions_read_only_and_cannot_add_change_or_deactivate(bank):
    tenant, people = bank
    sub = services.subscription_save(
        tenant=tenant,
        actor=SYSTEM,
        name="daily",
        kind="aging",
        recipients=["a@bank.example"],
        cron="0 7 * * *",
    )
    client = _admin(people[Role.ANALYST])
    assert client.post(reverse("admin:reporting_reportsubscription_add"), _form(tenant)).status_code == 403
    url = reverse("admin:reporting_reportsubscription_change", args=[sub.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert b"0 7 * * *" in page.content  # the schedule, shown read-only
    assert client.post(url, _form(tenant, cron="0 9 * * *")).status_code == 403
    changelist = reverse("admin:reporting_reportsubscription_changelist")
    client.post(changelist, {"action": "deactivate_selected", "_selected_action": [sub.pk]})
    sub.refresh_from_db()
    assert sub.is_active
    assert sub.schedule.enabled
    assert services.subscription_cron(sub) == "0 7 * * *"
    assert len(_events("report.subscription_saved", sub)) == 1


def test_the_deactivate_action_disables_the_beat_entry_and_is_audited(bank):
    tenant, people = bank
    sub = services.subscription_save(
        tenant=tenant,
        actor=SYSTEM,
        name="daily",
        kind="aging",
        recipients=["a@bank.example"],
        cron="0 7 * * *",
    )
    changelist = reverse("admin:reporting_reportsubscription_changelist")
    response = _admin(people[Role.APPROVER]).post(
        changelist, {"action": "deactivate_selected", "_selected_action": [sub.pk]}
    )
    assert response.status_code == 302
    sub.refresh_from_db()
    assert not sub.is_active
    assert not sub.schedule.enabled
    [event] = _events("report.subscription_deactivated", sub)
    assert (event.before["is_active"], event.after["is_active"]) == (True, False)
    # A beat tick that was already queued generates nothing for an inactive subscription.
    assert services.subscription_generate(subscription_id=sub.pk, scheduled_for=sub.created_at) == []


# --- the API --------------------------------------------------------------------------------------


def test_an_admin_creates_lists_updates_and_deactivates_a_subscription_over_the_api(bank):
    tenant, people = bank
    api = client_for(people[Role.ADMIN], tenant_slug=tenant.slug)
    created = api.post(API, BODY, format="json", HTTP_IDEMPOTENCY_KEY="sub-1")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["cron"] == "0 7 * * 1-5"
    assert body["timezone"] == "Europe/London"
    assert (body["expire_seconds"], body["is_active"], body["filters"]) == (1800, True, {"by": "root_cause"})
    replay = api.post(API, BODY, format="json", HTTP_IDEMPOTENCY_KEY="sub-1")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert ReportSubscription.objects.filter(tenant=tenant).count() == 1
    again = api.post(API, BODY, format="json")  # the same name, no key: a conflict, not an upsert
    assert (again.status_code, again.json()["error"]["code"]) == (409, "subscription_exists")

    sub = ReportSubscription.objects.get(pk=body["id"])
    task_id = sub.schedule_id
    listed = api.get(API).json()["results"]
    assert [s["name"] for s in listed] == ["morning-aging"]
    assert api.get(f"{API}{sub.pk}/").json()["recipients"] == BODY["recipients"]

    patched = api.patch(f"{API}{sub.pk}/", {"cron": "15 6 * * *", "format": "xlsx"}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["cron"], patched.json()["format"]) == ("15 6 * * *", "xlsx")
    assert patched.json()["recipients"] == BODY["recipients"]  # untouched by the PATCH
    put_body = {k: v for k, v in BODY.items() if k != "name"} | {"kind": "inventory", "filters": {}}
    put = api.put(f"{API}{sub.pk}/", put_body, format="json")
    assert put.status_code == 200, put.content
    assert (put.json()["kind"], put.json()["cron"], put.json()["format"]) == (
        "inventory",
        "0 7 * * 1-5",
        "csv",
    )
    sub.refresh_from_db()
    assert sub.schedule_id == task_id  # one beat entry per subscription, updated in place
    assert len(_events("report.subscription_saved", sub)) == 3

    gone = api.delete(f"{API}{sub.pk}/")
    assert gone.status_code == 200
    assert gone.json()["is_active"] is False
    assert not PeriodicTask.objects.get(pk=task_id).enabled
    assert len(_events("report.subscription_deactivated", sub)) == 1
    assert api.delete(f"{API}{sub.pk}/").status_code == 200  # idempotent: no second event
    assert len(_events("report.subscription_deactivated", sub)) == 1
    revived = api.patch(f"{API}{sub.pk}/", {"is_active": True}, format="json")
    assert revived.json()["is_active"] is True
    assert PeriodicTask.objects.get(pk=task_id).enabled


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"cron": "61 7 * * *"}, "invalid_cron"),
        ({"cron": "every morning"}, "invalid_cron"),
        ({"recipients": ["controller@bank.example", "nobody"]}, "invalid_recipient"),
        ({"kind": "statement"}, "invalid"),  # not a subscribable report: the enum refuses it
        ({"filters": {"by": "colour"}}, "invalid_report_filter"),
        ({"filters": {"at": "2026-12-01T07:00"}}, "invalid_report_filter"),  # not an aging filter
        ({"recipients": [], "webhook": False}, "invalid_report_filter"),
        ({"webhook": True}, "webhook_not_configured"),
    ],
)
def test_the_api_refuses_a_subscription_that_does_not_hold_with_its_code(bank, change, code):
    tenant, people = bank
    other = TenantFactory(slug="sub-b")  # another tenant's webhook is not this tenant's
    sla_webhook_set(tenant=other, actor=SYSTEM, url="https://hooks.b.example/x", secret="s" * 32)
    response = client_for(people[Role.ADMIN], tenant_slug=tenant.slug).post(API, BODY | change, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not ReportSubscription.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="report.subscription").exists()


def test_the_tenants_own_webhook_is_accepted(bank):
    tenant, people = bank
    sla_webhook_set(tenant=tenant, actor=SYSTEM, url="https://hooks.a.example/x", secret="s" * 32)
    body = BODY | {"webhook": True, "recipients": []}
    response = client_for(people[Role.APPROVER], tenant_slug=tenant.slug).post(API, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["webhook"] is True


def test_an_analyst_reads_but_cannot_write_and_another_tenants_subscription_is_404(bank):
    tenant, people = bank
    sub = services.subscription_save(
        tenant=tenant,
        actor=SYSTEM,
        name="daily",
        kind="aging",
        recipients=["a@bank.example"],
        cron="0 7 * * *",
    )
    analyst = client_for(people[Role.ANALYST], tenant_slug=tenant.slug)
    assert analyst.get(f"{API}{sub.pk}/").status_code == 200
    for response in (
        analyst.post(API, BODY, format="json"),
        analyst.patch(f"{API}{sub.pk}/", {"cron": "0 9 * * *"}, format="json"),
        analyst.delete(f"{API}{sub.pk}/"),
    ):
        assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")

    other = TenantFactory(slug="sub-b")
    outsider = client_for(member(other, Role.ADMIN), tenant_slug=other.slug)
    for response in (
        outsider.get(f"{API}{sub.pk}/"),
        outsider.patch(f"{API}{sub.pk}/", {"cron": "0 9 * * *"}, format="json"),
        outsider.delete(f"{API}{sub.pk}/"),
    ):
        assert (response.status_code, response.json()["error"]["code"]) == (404, "report_not_found")
    assert outsider.get(API).json()["results"] == []
    sub.refresh_from_db()
    assert sub.is_active
    assert services.subscription_cron(sub) == "0 7 * * *"


def test_the_service_asks_the_table_before_it_says_what_is_wrong_with_the_input(bank):
    tenant, people = bank
    with pytest.raises(ApplicationError) as refused:
        services.subscription_save(
            tenant=tenant,
            actor=Actor.for_user(people[Role.ANALYST]),
            name="daily",
            kind="aging",
            recipients=["not-an-address"],
            cron="0 99 * * *",
        )
    assert refused.value.code == "permission_denied"
    assert refused.value.extra["verb"] == "add"
    assert not ReportSubscription.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="report.subscription").exists()
