"""The input boundary (jfintech/api/boundary.py) and the five 500s schemathesis found (issue 19):
a NUL byte in a JSON push's field name reaching COPY, a record id beyond bigint in a manual match,
a case transition through an API key, min_age_days=10**8 on the case list, a NUL byte in an
audit-events filter. Each is now a 4xx in the error shape."""

from datetime import date

import pytest
from rest_framework.test import APIClient

from exceptions.models import Case
from exceptions.tests.test_apis import make_cases
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.common.inputs import BIGINT_MAX
from jfintech.tenancy import services as tenancy_services
from jfintech.tenancy.models import Role
from jfintech.tests.factories import TenantFactory, member
from reconciliation.ingestion.parsers.json_records import parse_json_records
from reconciliation.ingestion.tests.factories import SourceFactory
from reconciliation.matching.tests.factories import two_way
from reconciliation.models import IngestionBatch, Record

pytestmark = pytest.mark.django_db

D = date.today().isoformat()


def key_client(tenant, role=Role.ADMIN) -> APIClient:
    created = tenancy_services.api_key_create(
        tenant=tenant, actor=Actor.for_system("t"), name=f"k-{role}", role=role
    )
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Api-Key {created.plaintext}")
    return c


def refused(response, status=400, code="invalid"):
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    return response.json()["error"]


@pytest.mark.parametrize(
    "record",
    [
        {"external_id": "P1", "business_date": D, "amount": "1", "currency": "CHF", "x\x00y": "1"},
        {"external_id": "P\x001", "business_date": D, "amount": "1", "currency": "CHF"},
        {"external_id": "P1", "business_date": D, "amount": "1", "attributes": {"k\x00": "v"}},
        {"external_id": "P1", "business_date": D, "amount": 2**64, "currency": "CHF"},
    ],
)
def test_a_json_push_with_a_nul_byte_or_a_huge_integer_is_refused_whole(record):
    source = SourceFactory(format="json")
    c = key_client(source.tenant, Role.INTEGRATION)
    url = f"/api/v1/ingestion/sources/{source.pk}/records/"
    error = refused(c.post(url, {"records": [record]}, format="json"), 400, "parse_error")
    assert "\x00" not in error["message"]
    assert not IngestionBatch.objects.filter(source=source).exists()


def test_a_pulled_or_uploaded_json_record_with_a_nul_field_name_is_a_rejection_not_a_crash():
    rows = list(parse_json_records([{"external_id": "P1", "a\x00b": "1"}, {"external_id": "P2"}]).rows)
    (number, raw, *_rest), second = rows
    assert number == 1
    assert "\x00" not in raw
    assert any("NUL byte is not allowed in a field name" in str(v) for v in rows[0])
    assert second[0] == 2
    assert not any("NUL" in str(v) for v in second)


def test_a_record_id_beyond_bigint_in_a_manual_match_is_400():
    defn, _left, _right = two_way([{"name": "exact_ref", "type": "exact", "keys": ["reference"]}])
    c = key_client(defn.tenant, Role.ANALYST)
    for ids in ([BIGINT_MAX + 1, 1], [1, -(2**70)]):
        response = c.post(
            f"/api/v1/reconciliation/definitions/{defn.pk}/manual-matches/",
            {"record_ids": ids, "reason": "x"},
            format="json",
        )
        refused(response, 400, "parse_error")


def test_a_path_id_beyond_bigint_is_404():
    tenant = TenantFactory()
    refused(key_client(tenant).get(f"/api/v1/exceptions/cases/{2**64}/"), 404, "not_found")


def test_a_case_transition_through_an_api_key_acts_as_the_key():
    tenant = TenantFactory(slug="t-key")
    (case,) = make_cases(tenant, {"amount": "10.00"})
    c = key_client(tenant, Role.ANALYST)
    url = f"/api/v1/exceptions/cases/{case.pk}/transition/"
    # A key is nobody to assign to, nor to take an unassigned case: a clear refusal, not a crash.
    refused(c.post(url, {"to_status": "investigating"}, format="json"), 403, "not_a_person")
    refused(c.post(url, {"to_status": "assigned"}, format="json"), 403, "not_a_person")
    me = f"/api/v1/exceptions/cases/{case.pk}/assign/"
    refused(c.post(me, {"assignee": "me"}, format="json"), 403, "not_a_person")
    analyst = member(tenant, Role.ANALYST, username="ana")
    assigned = c.post(
        f"/api/v1/exceptions/cases/{case.pk}/assign/", {"assignee": str(analyst.pk)}, format="json"
    )
    assert assigned.status_code == 200, assigned.content
    moved = c.post(url, {"to_status": "investigating"}, format="json")
    assert (moved.status_code, moved.json()["status"], moved.json()["assignee"]) == (
        200,
        "investigating",
        "ana",
    )
    event = AuditEvent.objects.filter(tenant=tenant, action="case.investigating").get()
    assert event.actor_kind == "api_key"
    assert event.actor_display.startswith("api-key:")
    resolved = c.post(url, {"to_status": "resolved", "reason": "timing"}, format="json")
    assert (resolved.status_code, Case.objects.get(pk=case.pk).resolved_by) == (200, event.actor_display)


@pytest.mark.parametrize("days", ["100000000", "100000", "2611", "-1", "1.5", "1e9"])
def test_min_age_days_is_a_bounded_integer(days):
    tenant = TenantFactory()
    refused(key_client(tenant).get("/api/v1/exceptions/cases/", {"min_age_days": days}))


def test_min_age_days_at_its_bound_answers():
    tenant = TenantFactory()
    response = key_client(tenant).get("/api/v1/exceptions/cases/", {"min_age_days": "2610"})
    assert (response.status_code, response.json()["results"]) == (200, [])


@pytest.mark.parametrize(
    "params",
    [{"action": "case.\x00"}, {"actor_id": "\x00"}, {"x\x00": "1"}, {"q": "a\x00"}],
)
def test_a_nul_byte_in_any_query_parameter_is_400(params):
    tenant = TenantFactory()
    c = key_client(tenant)
    error = refused(c.get("/api/v1/audit-events/", params))
    assert "\x00" not in error["message"]
    refused(c.get("/api/v1/exceptions/cases/", params))


def test_a_nul_byte_outside_the_api_is_a_plain_400(client):
    assert client.get("/admin/login/", {"next": "/\x00"}).status_code == 400


@pytest.mark.parametrize("size", ["abc", "0", "501", "-1", "1.0", "٣"])
def test_a_page_size_that_is_not_an_integer_from_1_to_500_is_refused(size):
    tenant = TenantFactory()
    error = refused(key_client(tenant).get("/api/v1/audit-events/", {"page_size": size}))
    assert [e["field"] for e in error["details"]["errors"]] == ["page_size"]


def test_a_page_size_in_range_is_honoured():
    tenant = TenantFactory()
    c = key_client(tenant)
    for _ in range(3):
        c.post("/api/v1/tenant/holidays/", {"date": D, "name": "x"}, format="json")
    page = c.get("/api/v1/audit-events/", {"page_size": "1"}).json()
    assert len(page["results"]) == 1
    assert page["next"]


def test_nan_and_infinity_are_refused_in_a_body():
    source = SourceFactory(format="json")
    c = key_client(source.tenant, Role.INTEGRATION)
    body = f'{{"records": [{{"external_id": "P1", "business_date": "{D}", "amount": NaN}}]}}'
    url = f"/api/v1/ingestion/sources/{source.pk}/records/"
    refused(c.post(url, body, content_type="application/json"), 400, "parse_error")
    assert not Record.objects.filter(source=source).exists()
