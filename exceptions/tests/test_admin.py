"""The admin desk: filters, no N+1, bulk actions through the services, the case page, tenant scoping."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from exceptions import services
from exceptions.models import ApprovalRequest, Case, CaseComment, RootCauseCategory
from exceptions.tests.factories import TenantFactory, break_input, member
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.tenancy.models import Role

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:exceptions_case_changelist")
RECON = Actor.for_system("recon")


@pytest.fixture
def analyst(tenant):
    return member(tenant, Role.ANALYST, username="ana", is_staff=True)


@pytest.fixture
def approver(tenant):
    return member(tenant, Role.APPROVER, username="chief", is_staff=True)


def open_cases(tenant, n=1, run_id=1, **kw):
    breaks = [break_input(1, **kw) for _ in range(n)]
    services.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=run_id,
        trace_id="ab" * 16,
        breaks=breaks,
        actor=RECON,
    )
    return list(Case.objects.filter(fingerprint__in=[b.fingerprint for b in breaks]).order_by("id"))


def listed(response) -> set[int]:
    assert response.status_code == 200, response.content[:500]
    return {obj.pk for obj in response.context["cl"].result_list}


def test_the_list_has_no_n_plus_one(client, tenant, analyst, django_assert_max_num_queries):
    cases = open_cases(tenant, 40)
    cause = services.root_cause_save(tenant=tenant, actor=RECON, code="fee", name="Bank fee")
    for case in cases[:15]:
        services.case_assign(tenant=tenant, actor=RECON, case_id=case.pk, assignee=analyst)
        services.case_set_root_cause(tenant=tenant, actor=RECON, case_id=case.pk, root_cause_id=cause.pk)
    client.force_login(analyst)
    client.get(CHANGELIST)  # warm caches (content types, session)

    with django_assert_max_num_queries(25):
        response = client.get(CHANGELIST, {"age": "0-1", "assignee": "mine", "sla": "ok", "o": "-5"})
    assert len(listed(response)) == 15


def test_filters_narrow_the_desk(client, tenant, analyst):
    old, fresh = (
        open_cases(tenant, 1, reference="OLD-1")[0],
        open_cases(tenant, 1, run_id=2, amount="250000")[0],
    )
    Case.objects.filter(pk=old.pk).update(first_seen_at=timezone.now() - timedelta(days=10))
    Case.objects.filter(pk=fresh.pk).update(sla_due_at=timezone.now() - timedelta(hours=1))
    services.case_resolve(
        tenant=tenant, actor=RECON, case_id=open_cases(tenant, 1, run_id=3)[0].pk, reason="not_a_break"
    )
    client.force_login(analyst)

    assert listed(client.get(CHANGELIST)) == {old.pk, fresh.pk}  # the default hides resolved cases
    assert len(listed(client.get(CHANGELIST, {"status": "all"}))) == 3
    assert listed(client.get(CHANGELIST, {"age": "gt2", "assignee": "none"})) == {old.pk}
    assert listed(client.get(CHANGELIST, {"age": "0-1"})) == {fresh.pk}
    assert listed(client.get(CHANGELIST, {"sla": "breached"})) == {fresh.pk}
    assert listed(client.get(CHANGELIST, {"amount_min": "100000"})) == {fresh.pk}
    assert listed(client.get(CHANGELIST, {"amount_min": "1", "amount_max": "1000"})) == {old.pk}
    assert listed(client.get(CHANGELIST, {"q": "old-1"})) == {old.pk}
    assert listed(client.get(CHANGELIST, {"currency": "EUR", "definition": "1"})) == {old.pk, fresh.pk}


def test_another_tenants_cases_never_show(client, tenant, analyst):
    theirs = open_cases(TenantFactory(slug="other-bank"), 1)[0]
    client.force_login(analyst)
    assert listed(client.get(CHANGELIST)) == set()
    assert client.get(reverse("admin:exceptions_case_change", args=[theirs.pk])).status_code == 404
    response = client.post(reverse("admin:exceptions_case_act", args=[theirs.pk]), {"op": "assign_me"})
    assert response.status_code == 404


def test_bulk_assign_to_me_calls_the_service_and_reports_skips(client, tenant, analyst):
    a, b, done = open_cases(tenant, 3)
    services.case_resolve(tenant=tenant, actor=RECON, case_id=done.pk, reason="not_a_break")
    client.force_login(analyst)

    response = client.post(
        CHANGELIST + "?status=all",
        {"action": "assign_to_me", "_selected_action": [a.pk, b.pk, done.pk]},
        follow=True,
    )

    assert {c.assignee for c in Case.objects.filter(pk__in=[a.pk, b.pk])} == {analyst}
    texts = [str(m) for m in response.context["messages"]]
    assert "Assigned to you: 2 case(s)." in texts
    assert any(f"case {done.pk}" in t and "Allowed: open" in t for t in texts)
    assert AuditEvent.objects.filter(action="case.assigned", actor_display="ana").count() == 2


def test_resolve_with_a_note_asks_first_then_resolves(client, tenant, analyst):
    (case,) = open_cases(tenant, 1)
    client.force_login(analyst)
    ask = client.post(CHANGELIST, {"action": "resolve_with_note", "_selected_action": [case.pk]})
    assert ask.status_code == 200
    assert b"Resolve cases" in ask.content

    client.post(
        CHANGELIST,
        {
            "action": "resolve_with_note",
            "_selected_action": [case.pk],
            "apply": "1",
            "reason": "fixed_at_source",
            "note": "rebooked by treasury",
        },
    )

    case.refresh_from_db()
    assert (case.status, case.resolution_reason, case.resolution_note) == (
        "resolved",
        "fixed_at_source",
        "rebooked by treasury",
    )


def test_set_root_cause_and_priority_in_bulk(client, tenant, analyst):
    cases = open_cases(tenant, 2)
    cause = RootCauseCategory.objects.create(tenant=tenant, code="fx", name="FX rate")
    client.force_login(analyst)
    ids = [c.pk for c in cases]
    client.post(
        CHANGELIST,
        {"action": "set_root_cause", "_selected_action": ids, "apply": "1", "root_cause": cause.pk},
    )
    client.post(
        CHANGELIST, {"action": "set_priority", "_selected_action": ids, "apply": "1", "priority": "high"}
    )
    assert set(Case.objects.filter(pk__in=ids).values_list("root_cause_id", "priority")) == {
        (cause.pk, "high")
    }


def test_only_approvers_get_the_approve_action_and_it_obeys_four_eyes(client, tenant, analyst, approver):
    services.approval_threshold_set(tenant=tenant, actor=RECON, currency="EUR", amount=Decimal("100"))
    (case,) = open_cases(tenant, 1, amount="5000")
    client.force_login(analyst)
    client.post(
        CHANGELIST,
        {
            "action": "request_write_off",
            "_selected_action": [case.pk],
            "apply": "1",
            "kind": "write_off",
            "note": "uncollectable",
        },
    )
    assert Case.objects.get(pk=case.pk).status == "pending_approval"
    assert b'value="approve"' not in client.get(CHANGELIST).content

    client.force_login(approver)
    assert b'value="approve"' in client.get(CHANGELIST).content
    client.post(
        CHANGELIST + "?status=all",
        {"action": "approve", "_selected_action": [case.pk], "apply": "1", "note": "ok"},
    )

    approval = ApprovalRequest.objects.get()
    assert (approval.status, approval.requested_by, approval.decided_by) == ("approved", analyst, approver)
    assert Case.objects.get(pk=case.pk).resolution_reason == "written_off"


def test_the_case_page_shows_records_side_by_side_and_takes_comments(client, tenant, analyst):
    (case,) = open_cases(tenant, 1, amount="0.50", left_amount="100.00")
    client.force_login(analyst)
    page = client.get(reverse("admin:exceptions_case_change", args=[case.pk]))
    html = page.content.decode()

    assert page.status_code == 200
    assert '<tr class="jf-differs"><th>amount</th>' in html  # 100.00 vs 99.50 highlighted
    assert '<tr class=""><th>currency</th>' in html
    assert "ab" * 16 in html and "v1/pass:exact_ref" in html  # trace id and rule  # noqa: PT018

    act = reverse("admin:exceptions_case_act", args=[case.pk])
    client.post(act, {"op": "comment", "body": "asked the bank for the MT940"})
    client.post(act, {"op": "resolve", "reason": "fixed_at_source", "note": "fee refunded"})

    assert CaseComment.objects.get().body == "asked the bank for the MT940"
    html = client.get(reverse("admin:exceptions_case_change", args=[case.pk])).content.decode()
    assert "asked the bank for the MT940" in html
    assert "case.commented" in html
    assert "case.resolved" in html


def test_the_index_shows_the_desk_at_a_glance(client, tenant, analyst):
    open_cases(tenant, 3, break_type="missing_right")
    client.force_login(analyst)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="desk-glance"' in html
    assert "<svg" in html
    assert "missing_right: 3" in html


def test_threshold_edits_in_the_admin_are_audited(client, tenant):
    admin_user = member(tenant, Role.ADMIN, username="boss", is_staff=True)
    client.force_login(admin_user)
    url = reverse("admin:exceptions_approvalthreshold_add")
    response = client.post(url, {"tenant": tenant.pk, "currency": "CHF", "amount": "2500"})
    assert response.status_code == 302, response.content[:1000]
    event = AuditEvent.objects.get(action="approval_threshold.set")
    assert (event.actor_display, event.after) == ("boss", {"currency": "CHF", "amount": "2500"})
