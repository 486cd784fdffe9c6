"""The desk API: filters, the workflow, four-eyes, Idempotency-Key and the standard error shape."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from exceptions import services
from exceptions.models import ApprovalRequest, Case
from exceptions.tests.factories import TenantFactory, break_input, member
from jfintech.audit import Actor
from jfintech.tenancy.models import Role

pytestmark = pytest.mark.django_db

BASE = "/api/v1/exceptions"


def client(user, tenant) -> APIClient:
    c = APIClient()
    c.force_login(user)
    c.defaults["HTTP_X_TENANT"] = tenant.slug
    return c


@pytest.fixture
def people(tenant):
    return {
        "analyst": member(tenant, Role.ANALYST, username="ana"),
        "analyst2": member(tenant, Role.ANALYST, username="bob"),
        "approver": member(tenant, Role.APPROVER, username="chief"),
        "admin": member(tenant, Role.ADMIN, username="boss"),
    }


def make_cases(tenant, *specs, run_id=1):
    breaks = [break_input(1, **spec) for spec in specs]
    services.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=run_id,
        trace_id="",
        breaks=breaks,
        actor=Actor.for_system("recon"),
    )
    return [Case.objects.get(tenant=tenant, fingerprint=b.fingerprint) for b in breaks]


def test_list_filters_by_status_type_assignee_amount_search_and_age(tenant, people):
    old, fresh, big = make_cases(
        tenant,
        {"amount": "10.00", "reference": "INV-OLD"},
        {"amount": "20.00"},
        {"amount": "2000000", "break_type": "missing_right", "account": "GB-NOSTRO-9"},
    )
    Case.objects.filter(pk=old.pk).update(first_seen_at=timezone.now() - timedelta(days=14))
    services.case_assign(
        tenant=tenant, actor=Actor.for_system("t"), case_id=fresh.pk, assignee=people["analyst"]
    )
    api = client(people["analyst"], tenant)

    def ids(**params):
        response = api.get(f"{BASE}/cases/", params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids() == {old.pk, fresh.pk, big.pk}
    assert ids(status="assigned") == {fresh.pk}
    assert ids(break_type="missing_right") == {big.pk}
    assert ids(assignee="me") == {fresh.pk}
    assert ids(assignee="none") == {old.pk, big.pk}
    assert ids(amount_min="1000") == {big.pk}
    assert ids(q="nostro") == {big.pk}
    assert ids(q="inv-old") == {old.pk}
    assert ids(age_bucket="8-30") == {old.pk}
    assert ids(age_bucket="0-1") == {fresh.pk, big.pk}
    assert ids(min_age_days=3, assignee="none") == {old.pk}
    assert ids(currency="eur", definition_id=1) == {old.pk, fresh.pk, big.pk}


def test_another_tenants_cases_are_invisible(tenant, people):
    other = TenantFactory(slug="other-bank")
    (theirs,) = make_cases(other, {})
    api = client(people["analyst"], tenant)
    assert api.get(f"{BASE}/cases/").json()["results"] == []
    response = api.get(f"{BASE}/cases/{theirs.pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "case_not_found"


def test_assign_transition_comment_and_retrieve_with_history(tenant, people):
    (case,) = make_cases(tenant, {})
    api = client(people["analyst"], tenant)

    assert (
        api.post(f"{BASE}/cases/{case.pk}/assign/", {"assignee": "me"}, format="json").json()["assignee"]
        == "ana"
    )
    r = api.post(f"{BASE}/cases/{case.pk}/transition/", {"to_status": "investigating"}, format="json")
    assert r.json()["status"] == "investigating"
    r = api.post(f"{BASE}/cases/{case.pk}/comments/", {"body": "fee booked twice"}, format="json")
    assert r.status_code == 201
    r = api.post(
        f"{BASE}/cases/{case.pk}/transition/",
        {"to_status": "resolved", "reason": "fixed_at_source", "note": "reversed"},
        format="json",
    )
    detail = api.get(f"{BASE}/cases/{case.pk}/").json()

    assert (detail["status"], detail["resolution_reason"]) == ("resolved", "fixed_at_source")
    assert [c["body"] for c in detail["comments"]] == ["fee booked twice"]
    assert [h["action"] for h in detail["history"]] == [
        "case.opened",
        "case.assigned",
        "case.investigating",
        "case.commented",
        "case.resolved",
    ]
    assert detail["snapshot"]["left"][0]["amount"] == "1000.00"


def test_an_illegal_transition_is_a_409_in_the_standard_shape(tenant, people):
    (case,) = make_cases(tenant, {})
    api = client(people["analyst"], tenant)
    api.post(
        f"{BASE}/cases/{case.pk}/transition/",
        {"to_status": "resolved", "reason": "not_a_break"},
        format="json",
    )

    r = api.post(f"{BASE}/cases/{case.pk}/transition/", {"to_status": "investigating"}, format="json")

    assert r.status_code == 409
    error = r.json()["error"]
    assert (error["code"], error["details"]["allowed"]) == ("illegal_transition", ["open"])
    assert set(error) == {"code", "message", "details", "request_id"}


@pytest.fixture
def threshold(tenant, people):
    services.approval_threshold_set(
        tenant=tenant, actor=Actor.for_user(people["admin"]), currency="EUR", amount=Decimal("1000")
    )


def request_write_off(api, case, note="uncollectable"):
    return api.post(
        f"{BASE}/cases/{case.pk}/resolution-requests/", {"kind": "write_off", "note": note}, format="json"
    )


def test_four_eyes_over_the_api(tenant, people, threshold):
    small, big = make_cases(tenant, {"amount": "900"}, {"amount": "5000"})
    ana, bob, chief = (client(people[k], tenant) for k in ("analyst", "analyst2", "approver"))

    below = request_write_off(ana, small)
    assert below.status_code == 201
    assert below.json()["approval"] is None
    assert below.json()["case"]["resolution_reason"] == "written_off"

    above = request_write_off(ana, big).json()
    approval_id = above["approval"]["id"]
    assert above["case"]["status"] == "pending_approval"

    analyst_try = bob.post(f"{BASE}/approvals/{approval_id}/approve/", {}, format="json")
    assert (analyst_try.status_code, analyst_try.json()["error"]["code"]) == (403, "permission_denied")

    approved = chief.post(f"{BASE}/approvals/{approval_id}/approve/", {"note": "agreed"}, format="json")
    assert approved.status_code == 200
    assert (approved.json()["requested_by_display"], approved.json()["decided_by_display"]) == (
        "ana",
        "chief",
    )
    assert Case.objects.get(pk=big.pk).resolution_reason == "written_off"


def test_the_maker_cannot_approve_over_the_api(tenant, people, threshold):
    (case,) = make_cases(tenant, {"amount": "5000"})
    chief = client(people["approver"], tenant)
    approval_id = request_write_off(chief, case).json()["approval"]["id"]

    r = chief.post(f"{BASE}/approvals/{approval_id}/approve/", {}, format="json")

    assert (r.status_code, r.json()["error"]["code"]) == (403, "maker_cannot_check")
    assert ApprovalRequest.objects.get().status == "pending"


def test_a_retried_post_with_the_same_idempotency_key_acts_once(tenant, people):
    (case,) = make_cases(tenant, {})
    api = client(people["analyst"], tenant)
    url = f"{BASE}/cases/{case.pk}/comments/"

    first = api.post(url, {"body": "called the bank"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post(url, {"body": "called the bank"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert case.comments.count() == 1


def test_a_member_without_a_desk_role_reads_cases_but_is_refused_work(tenant):
    # docs/tenancy.md, Decisions: an integration reads cases (case.view), never works them.
    [case] = make_cases(tenant, {})
    integration = member(tenant, Role.INTEGRATION, username="erp")
    assert client(integration, tenant).get(f"{BASE}/cases/").status_code == 200
    r = client(integration, tenant).post(f"{BASE}/cases/{case.pk}/comments/", {"body": "hi"}, format="json")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "permission_denied"


def test_list_queries_do_not_grow_with_cases(tenant, people, django_assert_max_num_queries):
    make_cases(tenant, *[{} for _ in range(30)])
    for case in Case.objects.all()[:10]:
        services.case_assign(
            tenant=tenant, actor=Actor.for_system("t"), case_id=case.pk, assignee=people["analyst"]
        )
    api = client(people["analyst"], tenant)
    with django_assert_max_num_queries(12):
        assert len(api.get(f"{BASE}/cases/").json()["results"]) == 30
