"""The triage workflow and four-eyes control, through the services (the admin and API call the same)."""

from decimal import Decimal

import pytest

from exceptions import selectors, services
from exceptions.models import ApprovalRequest, ApprovalStatus, Case, CaseStatus, Priority
from exceptions.tests.factories import break_input, member
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst(tenant):
    return member(tenant, Role.ANALYST, username="ana")


@pytest.fixture
def analyst2(tenant):
    return member(tenant, Role.ANALYST, username="bob")


@pytest.fixture
def approver(tenant):
    return member(tenant, Role.APPROVER, username="chief")


def open_case(tenant, amount="150.00", currency="EUR", **kw) -> Case:
    b = break_input(1, amount=amount, currency=currency, **kw)
    services.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=1,
        trace_id="",
        breaks=[b],
        actor=Actor.for_system("recon"),
    )
    return Case.objects.get(tenant=tenant, fingerprint=b.fingerprint)


def as_user(user):
    return {"actor": Actor.for_user(user), "user": user}


def test_open_assigned_investigating_resolved_each_audited(tenant, analyst):
    case = open_case(tenant)
    a = Actor.for_user(analyst)

    services.case_assign(tenant=tenant, actor=a, case_id=case.pk, assignee=analyst)
    services.case_start_investigating(tenant=tenant, actor=a, user=analyst, case_id=case.pk)
    services.case_comment_add(tenant=tenant, actor=a, user=analyst, case_id=case.pk, body="bank fee of 150")
    done = services.case_resolve(
        tenant=tenant, actor=a, case_id=case.pk, reason="fixed_at_source", note="rebooked"
    )

    assert (done.status, done.resolution_reason, done.resolved_by) == ("resolved", "fixed_at_source", "ana")
    actions = [e.action for e in selectors.case_history(case=case)]
    assert actions == [
        "case.opened",
        "case.assigned",
        "case.investigating",
        "case.commented",
        "case.resolved",
    ]
    assert selectors.case_history(case=case).last().actor_display == "ana"


def test_an_illegal_transition_names_the_allowed_ones(tenant, analyst):
    case = open_case(tenant)
    a = Actor.for_user(analyst)
    services.case_resolve(tenant=tenant, actor=a, case_id=case.pk, reason="not_a_break")

    with pytest.raises(ApplicationError) as err:
        services.case_start_investigating(tenant=tenant, actor=a, user=analyst, case_id=case.pk)

    assert err.value.code == "illegal_transition"
    assert err.value.status == 409
    assert err.value.extra["allowed"] == ["open"]
    assert "Allowed: open" in err.value.message


def test_resolving_by_write_off_directly_is_refused(tenant, analyst):
    case = open_case(tenant)
    with pytest.raises(ApplicationError) as err:
        services.case_resolve(
            tenant=tenant, actor=Actor.for_user(analyst), case_id=case.pk, reason="written_off"
        )
    assert err.value.code == "invalid_resolution_reason"


def test_investigating_an_unassigned_case_takes_it(tenant, analyst):
    case = open_case(tenant)
    case = services.case_start_investigating(
        tenant=tenant, user=analyst, case_id=case.pk, actor=Actor.for_user(analyst)
    )
    assert (case.status, case.assignee) == ("investigating", analyst)


def test_a_non_member_cannot_be_assigned(tenant, analyst):
    from exceptions.tests.factories import TenantFactory

    outsider = member(TenantFactory(slug="elsewhere"), Role.ANALYST, username="out")
    with pytest.raises(ApplicationError) as err:
        services.case_assign(
            tenant=tenant, actor=Actor.for_user(analyst), case_id=open_case(tenant).pk, assignee=outsider
        )
    assert err.value.code == "not_a_desk_member"


def test_reopen_restarts_the_sla_and_keeps_the_assignee(tenant, analyst):
    case = open_case(tenant)
    a = Actor.for_user(analyst)
    services.case_assign(tenant=tenant, actor=a, case_id=case.pk, assignee=analyst)
    services.case_resolve(tenant=tenant, actor=a, case_id=case.pk, reason="fixed_at_source")

    case = services.case_transition(tenant=tenant, actor=a, user=analyst, case_id=case.pk, to_status="open")

    assert (case.status, case.assignee, case.reopen_count, case.resolution_reason) == (
        "assigned",
        analyst,
        1,
        "",
    )


def test_priority_change_recomputes_the_sla(tenant, analyst):
    case = open_case(tenant, amount="50.00")  # low: 10 business days
    assert case.priority == Priority.LOW
    case = services.case_set_priority(
        tenant=tenant, actor=Actor.for_user(analyst), case_id=case.pk, priority="critical"
    )
    assert 1 <= (case.sla_due_at - case.opened_at).days <= 3  # one business day, at most over a weekend


# --- four-eyes --------------------------------------------------------------------------------


@pytest.fixture
def tenant_admin(tenant):
    return member(tenant, Role.ADMIN, username="boss")


@pytest.fixture
def threshold(tenant, tenant_admin):
    # Thresholds are the tenant admin's (the permission table): an approver does not set the bar they check.
    return services.approval_threshold_set(
        tenant=tenant, actor=Actor.for_user(tenant_admin), currency="EUR", amount=Decimal("1000.00")
    )


def test_below_the_threshold_a_write_off_needs_no_approval(tenant, analyst, threshold):
    case = open_case(tenant, amount="999.99")
    result = services.case_request_resolution(
        tenant=tenant, **as_user(analyst), case_id=case.pk, kind="write_off", note="bank fee, immaterial"
    )
    assert result["approval"] is None
    assert (result["case"].status, result["case"].resolution_reason) == ("resolved", "written_off")


def test_at_the_threshold_exactly_no_approval_is_needed(tenant, analyst, threshold):
    case = open_case(tenant, amount="1000.00")
    result = services.case_request_resolution(
        tenant=tenant,
        **as_user(analyst),
        case_id=case.pk,
        kind="force_match",
        note="same payment, reference typo",
    )
    assert result["case"].resolution_reason == "force_matched"


def test_above_the_threshold_an_approver_other_than_the_maker_decides(tenant, analyst, approver, threshold):
    case = open_case(tenant, amount="1000.01")
    result = services.case_request_resolution(
        tenant=tenant, **as_user(analyst), case_id=case.pk, kind="write_off", note="uncollectable"
    )
    approval = result["approval"]
    assert (result["case"].status, approval.status) == ("pending_approval", "pending")

    approved = services.approval_decide(
        tenant=tenant, **as_user(approver), approval_id=approval.pk, approve=True, note="ok"
    )

    case.refresh_from_db()
    assert (case.status, case.resolution_reason) == ("resolved", "written_off")
    assert case.resolved_by == "ana, approved by chief"
    assert (approved.requested_by, approved.decided_by, approved.status) == (analyst, approver, "approved")
    assert selectors.case_history(case=case).last().after["checker"] == "chief"


def test_an_analyst_cannot_approve(tenant, analyst, analyst2, threshold):
    case = open_case(tenant, amount="5000")
    services.case_request_resolution(
        tenant=tenant, **as_user(analyst), case_id=case.pk, kind="write_off", note="x"
    )
    with pytest.raises(ApplicationError) as err:
        services.approval_decide(tenant=tenant, **as_user(analyst2), case_id=case.pk, approve=True)
    assert (err.value.code, err.value.status) == ("permission_denied", 403)  # the table refuses first
    assert Case.objects.get(pk=case.pk).status == CaseStatus.PENDING_APPROVAL


def test_the_maker_cannot_approve_their_own_request(tenant, approver, threshold):
    case = open_case(tenant, amount="5000")
    services.case_request_resolution(
        tenant=tenant, **as_user(approver), case_id=case.pk, kind="write_off", note="x"
    )
    with pytest.raises(ApplicationError) as err:
        services.approval_decide(tenant=tenant, **as_user(approver), case_id=case.pk, approve=True)
    assert err.value.code == "maker_cannot_check"


def test_a_currency_without_threshold_always_needs_approval(tenant, analyst, threshold):
    case = open_case(tenant, amount="1.00", currency="USD")
    result = services.case_request_resolution(
        tenant=tenant, **as_user(analyst), case_id=case.pk, kind="write_off", note="x"
    )
    assert result["approval"] is not None


def test_rejection_returns_the_case_to_where_it_was(tenant, analyst, approver, threshold):
    case = open_case(tenant, amount="5000")
    services.case_start_investigating(tenant=tenant, **as_user(analyst), case_id=case.pk)
    services.case_request_resolution(
        tenant=tenant, **as_user(analyst), case_id=case.pk, kind="write_off", note="x"
    )

    services.approval_decide(
        tenant=tenant, **as_user(approver), case_id=case.pk, approve=False, note="chase it"
    )

    case.refresh_from_db()
    assert (case.status, case.assignee) == ("investigating", analyst)
    assert ApprovalRequest.objects.get().status == ApprovalStatus.REJECTED


def test_a_pending_case_leaves_only_by_decision(tenant, analyst, threshold):
    case = open_case(tenant, amount="5000")
    services.case_request_resolution(
        tenant=tenant, **as_user(analyst), case_id=case.pk, kind="write_off", note="x"
    )
    with pytest.raises(ApplicationError) as err:
        services.case_resolve(
            tenant=tenant, actor=Actor.for_user(analyst), case_id=case.pk, reason="not_a_break"
        )
    assert err.value.extra["allowed"] == []


def test_auto_match_withdraws_a_pending_write_off(tenant, analyst, threshold):
    case = open_case(tenant, amount="5000")
    services.case_request_resolution(
        tenant=tenant, **as_user(analyst), case_id=case.pk, kind="write_off", note="x"
    )
    services.cases_resolve_matched(
        tenant=tenant,
        definition_id=1,
        run_id=2,
        trace_id="",
        matched_fingerprints=[case.fingerprint],
        actor=Actor.for_system("recon"),
    )
    case.refresh_from_db()
    assert (case.status, case.resolution_reason) == ("resolved", "auto_matched")
    assert ApprovalRequest.objects.get().status == ApprovalStatus.WITHDRAWN


def test_threshold_changes_are_audited(tenant, tenant_admin):
    from jfintech.audit.models import AuditEvent

    a = Actor.for_user(tenant_admin)
    services.approval_threshold_set(tenant=tenant, actor=a, currency="gbp", amount=Decimal("500"))
    services.approval_threshold_set(tenant=tenant, actor=a, currency="GBP", amount=Decimal("750"))
    event = AuditEvent.objects.filter(action="approval_threshold.set").order_by("id").last()
    assert (event.before, event.after) == (
        {"currency": "GBP", "amount": "500.000000"},
        {"currency": "GBP", "amount": "750"},
    )


def test_transitions_are_counted_by_target_status(tenant, analyst, django_capture_on_commit_callbacks):
    from prometheus_client import REGISTRY

    def count(status):
        return REGISTRY.get_sample_value("exception_cases_transitions_total", {"to_status": status}) or 0.0

    case = open_case(tenant)
    before = count("resolved")
    with django_capture_on_commit_callbacks(execute=True):
        services.case_resolve(
            tenant=tenant, actor=Actor.for_user(analyst), case_id=case.pk, reason="not_a_break"
        )
    assert count("resolved") == before + 1
