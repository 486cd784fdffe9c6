"""API, CLI, admin and the beat schedule of definitions."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from jfintech.audit.models import AuditEvent
from jfintech.tenancy.models import Role
from jfintech.testing.processes import wait_until
from jfintech.tests.factories import member
from reconciliation.runs import services
from reconciliation.runs.models import Definition, Run, RunStatus
from reconciliation.runs.tests.factories import ACTOR, AS_OF, TenantFactory, definition, records, source_of

pytestmark = pytest.mark.django_db(transaction=True)
BASE = "/api/v1/reconciliation"


def user_client(tenant, role=Role.ANALYST) -> APIClient:
    c = APIClient()
    c.force_login(member(tenant, role))
    c.defaults["HTTP_X_TENANT"] = tenant.slug
    return c


def _defn_with_data():
    defn = definition(TenantFactory(), name="gl-vs-bank")
    records(source_of(defn, "left"), {"reference": "A", "amount": "1"}, {"reference": "B", "amount": "2"})
    records(source_of(defn, "right"), {"reference": "A", "amount": "1"})
    return defn


def _terminal(run_id: int) -> Run:
    return wait_until(
        lambda: Run.objects.filter(pk=run_id, status__in=["completed", "failed"]).first(),
        timeout=60,
        message=f"run {run_id} did not finish",
    )


@pytest.mark.workers
def test_api_starts_a_run_once_per_idempotency_key_and_shows_progress_and_counts(celery_workers):
    defn = _defn_with_data()
    c = user_client(defn.tenant)
    body = {"definition": "gl-vs-bank", "as_of": AS_OF.isoformat()}
    first = c.post(f"{BASE}/runs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 202, first.content
    again = c.post(f"{BASE}/runs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Run.objects.filter(definition=defn).count() == 1
    # Another key while the first is in flight: refused, with the run in flight named.
    busy = c.post(f"{BASE}/runs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "run_in_progress"

    run = _terminal(first.json()["id"])
    detail = c.get(f"{BASE}/runs/{run.pk}/").json()
    assert detail["status"] == "completed"
    assert detail["progress"] == {"done": 3, "total": 3, "percent": 100.0}
    assert detail["counts"] == {
        "records_in_scope": 3,
        "matched": 2,
        "suggested": 0,
        "in_breaks": 1,
        "excluded": 0,
        "matches": 1,
    }
    assert detail["breaks_by_type"] == {"missing_right": 1}
    assert detail["rule_version"] == 1
    listed = c.get(f"{BASE}/runs/?definition=gl-vs-bank&status=completed").json()
    assert [r["id"] for r in listed["results"]] == [run.pk]
    breaks = c.get(f"{BASE}/runs/{run.pk}/breaks/").json()["results"]
    assert breaks[0]["break_type"] == "missing_right"
    definitions = c.get(f"{BASE}/definitions/").json()["results"]
    assert definitions[0]["sources"] == {"left": ["gl-vs-bank-left"], "right": ["gl-vs-bank-right"]}


def test_api_is_scoped_to_the_tenant():
    defn = _defn_with_data()
    run = services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", dispatch=False)
    other = user_client(TenantFactory())
    assert other.get(f"{BASE}/runs/{run.pk}/").status_code == 404
    assert other.post(f"{BASE}/runs/", {"definition": "gl-vs-bank"}, format="json").status_code == 404


def test_cli_json_has_exactly_the_issue_keys_and_fails_loudly_on_a_failed_run():
    defn = _defn_with_data()
    out = StringIO()
    call_command(
        "reconcile",
        "--tenant",
        defn.tenant.slug,
        "--definition",
        defn.name,
        "--as-of",
        AS_OF.isoformat(),
        "--inline",
        "--json",
        stdout=out,
    )
    summary = json.loads(out.getvalue())
    assert set(summary) == {
        "run_id",
        "status",
        "records_in_scope",
        "matched",
        "in_breaks",
        "excluded",
        "breaks_by_type",
        "duration_s",
    }
    assert summary["status"] == "completed"
    assert (summary["records_in_scope"], summary["matched"], summary["in_breaks"]) == (3, 2, 1)
    assert summary["breaks_by_type"] == {"missing_right": 1}
    with pytest.raises(CommandError, match="No definition"):
        call_command("reconcile", "--tenant", defn.tenant.slug, "--definition", "nope")


@pytest.mark.workers
def test_schedule_is_a_crontab_periodic_task_with_expire_seconds_not_expires(celery_workers):
    defn = _defn_with_data()
    services.definition_schedule_set(definition=defn, actor=ACTOR, cron="0 6 * * 1-5", expire_seconds=900)
    task = PeriodicTask.objects.get(pk=Definition.objects.get(pk=defn.pk).schedule_id)
    assert task.task == "reconciliation.start_scheduled_run"
    assert json.loads(task.kwargs) == {"definition_id": defn.pk}
    assert (task.expire_seconds, task.expires, task.queue) == (900, None, "reconciliation")
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "6", "1-5")
    assert str(task.crontab.timezone) == defn.tenant.timezone
    services.definition_schedule_set(definition=defn, actor=ACTOR, cron="30 7 * * *", expire_seconds=60)
    assert PeriodicTask.objects.filter(task="reconciliation.start_scheduled_run").count() == 1
    assert AuditEvent.objects.filter(action="recon_definition.schedule_set").count() == 2
    # Beat's tick starts a run; the same message redelivered starts nothing new.
    run_id = services.run_start_scheduled(definition_id=defn.pk, request_key="beat:msg-1")
    assert services.run_start_scheduled(definition_id=defn.pk, request_key="beat:msg-1") == run_id
    assert services.run_start_scheduled(definition_id=defn.pk, request_key="beat:msg-2") is None  # in flight
    assert Run.objects.get(pk=run_id).trigger == "beat"
    assert _terminal(run_id).status == RunStatus.COMPLETED
    # Beat's own ticks are keyed by the schedule's slot (the latest 07:30 in the tenant's zone): a
    # slot sent twice (a restarted beat, a redelivery) starts one run.
    slot_run = services.run_start_scheduled(definition_id=defn.pk)
    assert services.run_start_scheduled(definition_id=defn.pk) == slot_run
    crontab = Definition.objects.get(pk=defn.pk).schedule.crontab.schedule
    slot = services.schedule_slot(crontab, timezone.now())
    assert (slot.hour, slot.minute) == (7, 30)
    assert Run.objects.get(pk=slot_run).request_key == f"beat:{defn.pk}:{slot.isoformat()}"
    assert _terminal(slot_run).status == RunStatus.COMPLETED
    services.definition_schedule_set(definition=defn, actor=ACTOR, cron=None)
    assert not PeriodicTask.objects.filter(task="reconciliation.start_scheduled_run").exists()


@pytest.mark.workers
def test_admin_lists_runs_with_progress_and_starts_a_run_by_action(admin_client, celery_workers):
    defn = _defn_with_data()
    run = services.run_execute_inline(
        services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", dispatch=False)
    )
    page = admin_client.get("/admin/reconciliation/run/")
    assert page.status_code == 200
    assert b"3 / 3 (100%)" in page.content
    assert admin_client.get(f"/admin/reconciliation/run/{run.pk}/change/").status_code == 200
    assert admin_client.get(f"/admin/reconciliation/definition/{defn.pk}/change/").status_code == 200
    response = admin_client.post(
        "/admin/reconciliation/definition/", {"action": "start_runs", "_selected_action": [defn.pk]}
    )
    assert response.status_code == 302
    started = Run.objects.filter(definition=defn).order_by("-id").first()
    assert started.trigger == "admin"
    assert _terminal(started.pk).status == RunStatus.COMPLETED


def test_admin_edit_of_rules_publishes_a_new_version_and_sets_the_schedule(admin_client):
    defn = _defn_with_data()
    left, right = source_of(defn, "left"), source_of(defn, "right")
    rules = {
        "passes": [
            {"name": "tol", "type": "tolerance", "keys": ["reference"], "amount": {"absolute": "0.01"}}
        ]
    }
    form = {
        "description": "GL vs bank",
        "lookback_days": 30,
        "lookahead_days": 5,
        "deadline_seconds": 1800,
        "is_active": "on",
        "left_sources": [left.pk],
        "right_sources": [right.pk],
        "rules": json.dumps(rules),
        "rules_comment": "a cent of tolerance",
        "schedule_cron": "0 6 * * 1-5",
        "schedule_expire_seconds": 600,
        "schedule_enabled": "on",
    }
    response = admin_client.post(f"/admin/reconciliation/definition/{defn.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    latest = defn.rule_versions.order_by("-version").first()
    assert (latest.version, latest.rules, latest.comment) == (2, rules, "a cent of tolerance")
    assert latest.status == "pending"  # four-eyes: runs keep version 1 until another person approves
    assert services.rule_version_current(defn).version == 1
    assert services.schedule_snapshot(Definition.objects.get(pk=defn.pk))["cron"] == "0 6 * * 1-5"


def test_a_break_in_the_api_names_its_case_which_an_integration_key_reads_but_cannot_work():
    from jfintech.audit import Actor
    from jfintech.tenancy import services as tenancy

    defn = _defn_with_data()
    run = services.run_start(
        tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF, dispatch=False
    )
    run = services.run_execute_inline(run)
    key = tenancy.api_key_create(
        tenant=defn.tenant, actor=Actor.for_system("test"), name="erp", role=Role.INTEGRATION
    )
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Api-Key {key.plaintext}")
    [brk] = c.get(f"{BASE}/runs/{run.pk}/breaks/").json()["results"]
    case_id = brk["case_id"]
    assert case_id is not None
    assert brk["case_url"] == f"http://testserver/api/v1/exceptions/cases/{case_id}/"
    case = c.get(brk["case_url"])
    assert case.status_code == 200, case.content
    assert case.json()["fingerprint"] == brk["fingerprint"]
    assert [x["id"] for x in c.get("/api/v1/exceptions/cases/").json()["results"]] == [case_id]
    # Read-only: working a case is the desk's.
    refused = c.post(f"/api/v1/exceptions/cases/{case_id}/priority/", {"priority": "high"}, format="json")
    assert refused.status_code == 403
