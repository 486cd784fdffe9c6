"""`make demo` seeds a coherent desk: every case comes from a run, definition or report delivery the
demo really made; positions are dated so a run as of today reports the data's own story; and a
restart keeps the passwords and runs nothing again."""

import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from exceptions.models import ApprovalRequest, BreakType, Case, CaseStatus
from jfintech.tenancy.calendar import tenant_today
from jfintech.tenancy.demo import demo_tenant
from reconciliation.runs import services
from reconciliation.runs.models import Break, Definition, Run, RunStatus
from reconciliation.runs.tests.factories import ACTOR
from reporting.models import ReportDelivery, ReportSubscription

# seed_demo runs as a command in autocommit (ingestion creates partitions on its own connection).
pytestmark = pytest.mark.django_db(transaction=True)
LOGINS = re.compile(r"demo (?:superuser|analyst|approver|admin): (\S+) / (\S+)")


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def _state(tenant) -> dict:
    return {
        "runs": list(Run.objects.filter(tenant=tenant).order_by("pk").values_list("pk", "as_of", "status")),
        "cases": list(
            Case.objects.filter(tenant=tenant)
            .order_by("pk")
            .values_list("pk", "status", "assignee_id", "run_count", "last_run_id")
        ),
        "deliveries": ReportDelivery.objects.filter(tenant=tenant).count(),
        "approvals": ApprovalRequest.objects.filter(tenant=tenant).count(),
    }


def _assert_every_case_comes_from_what_the_demo_made(tenant, client) -> None:
    definitions = {d.pk: d.name for d in Definition.objects.filter(tenant=tenant)}
    subscriptions = {s.pk: s.name for s in ReportSubscription.objects.filter(tenant=tenant)}
    runs = {r.pk: r for r in Run.objects.filter(tenant=tenant)}
    assert set(definitions.values()) == {"securities-3way", "gl-vs-bank"}
    assert all(r.definition_id in definitions for r in runs.values())
    assert all(len(r.trace_id) == 32 for r in runs.values())  # demo runs are traced too
    for case in Case.objects.filter(tenant=tenant):
        if case.break_type == BreakType.DELIVERY_FAILED:
            assert case.definition_name == f"report subscription {subscriptions[case.definition_id]}"
            delivery = ReportDelivery.objects.get(pk=case.first_run_id, subscription_id=case.definition_id)
            assert (delivery.status, delivery.case_id) == ("failed", case.pk)
            continue
        assert definitions.get(case.definition_id) == case.definition_name, case.pk
        first, last = runs[case.first_run_id], runs[case.last_run_id]  # KeyError: a phantom run
        assert first.definition_id == last.definition_id == case.definition_id
        assert case.trace_id == last.trace_id
        breaks = Break.objects.filter(fingerprint=case.fingerprint)
        if case.break_type == BreakType.RUN_FAILED:
            assert (first.status, first.error_code) == (RunStatus.FAILED, "fetch_timeout")
        elif case.resolution_reason == "auto_matched":
            # Its records matched in the run that resolved it (whether the demo has such cases
            # depends on the day it is seeded): the break is in the run that opened the case.
            assert breaks.filter(run_id=case.first_run_id).exists()
            assert not breaks.filter(run_id=case.last_run_id).exists()
        else:
            assert breaks.filter(run_id=case.last_run_id).exists()
    # The desk's definition filter offers what exists, under its own name.
    client.force_login(get_user_model().objects.get(username="demo-analyst"))
    page = client.get("/admin/exceptions/case/").content.decode()
    offered = {int(i): name for i, name in re.findall(r'\?definition=(\d+)[^"]*"[^>]*>([^<]+)<', page)}
    assert offered, "the case list shows no definition filter"
    for pk, name in offered.items():
        assert name in (definitions.get(pk), f"report subscription {subscriptions.get(pk)}"), (pk, name)
    # A case's page links to where it came from: its runs, or the report delivery (not a run).
    for case in Case.objects.filter(
        tenant=tenant, break_type__in=[BreakType.RUN_FAILED, BreakType.DELIVERY_FAILED]
    ):
        cell = re.search(
            r'id="case-runs">(.*?)</td>',
            client.get(f"/admin/exceptions/case/{case.pk}/change/").content.decode(),
            re.S,
        ).group(1)
        if case.break_type == BreakType.DELIVERY_FAILED:
            assert f"/admin/reporting/reportdelivery/{case.first_run_id}/change/" in cell
            assert "/reconciliation/run/" not in cell
        else:
            assert f"/admin/reconciliation/run/{case.first_run_id}/change/" in cell
            assert client.get(f"/admin/reconciliation/run/{case.first_run_id}/change/").status_code == 200


def _position_breaks(run: Run) -> list[dict]:
    return [b.differences["quantity"] for b in Break.objects.filter(run=run, break_type="position_break")]


def test_the_demo_desk_is_coherent_and_a_restart_keeps_passwords_and_runs_nothing_again(client):
    first = _seed()
    tenant = demo_tenant()
    state = _state(tenant)

    _assert_every_case_comes_from_what_the_demo_made(tenant, client)
    unresolved = Case.objects.filter(tenant=tenant).exclude(status=CaseStatus.RESOLVED)
    assert set(unresolved.values_list("break_type", flat=True)) == set(BreakType.values)
    assert unresolved.filter(assignee__isnull=False).count() >= 2
    assert unresolved.filter(status=CaseStatus.PENDING_APPROVAL).count() == 1
    # Cases of every age: the runs ran over the last weeks, their cases first seen on the run's day.
    ages = {(tenant_today(tenant) - c.first_seen_at.date()).days for c in unresolved}
    assert max(ages) >= 14, ages
    assert 0 in ages, ages

    # The securities run of the data's last day finds the custodian's story (two holdings 100 off,
    # one not reported), not every holding: the positions are dated that day.
    securities = Definition.objects.get(tenant=tenant, name="securities-3way")
    last = Run.objects.filter(definition=securities, status=RunStatus.COMPLETED).latest("as_of")
    story = _position_breaks(last)
    assert len(story) == 3, story
    unreported = [q for q in story if Decimal(q["closing"]) == 0]
    assert len(unreported) == 1, story
    assert Decimal(unreported[0]["expected_closing"]) != 0
    assert sorted(Decimal(q["delta"]) for q in story if q not in unreported) == [100, 100]

    second = _seed()  # make demo restarted
    assert LOGINS.findall(second) == LOGINS.findall(first)
    assert _state(tenant) == state  # no run again, no case touched, no delivery or approval added
    for username, password in LOGINS.findall(first):
        assert client.login(username=username, password=password), username

    # A run as of today (beat's, or "run now"): the demo's own when today is a business day.
    today = tenant_today(tenant)
    run = Run.objects.filter(definition=securities, as_of=today).first() or services.run_execute_inline(
        services.run_start(
            tenant=tenant, actor=ACTOR, definition=securities, trigger="cli", as_of=today, dispatch=False
        )
    )
    assert run.status == RunStatus.COMPLETED, run.error
    assert len(_position_breaks(run)) <= len(story), _position_breaks(run)
