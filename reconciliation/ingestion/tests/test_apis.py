"""Ingestion API: upload (multipart, Idempotency-Key, 413), JSON push, batch totals, rejections, reverse."""

import threading
from datetime import date

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from jfintech.audit import Actor
from jfintech.tenancy import services as tenancy_services
from jfintech.tenancy.models import Role
from jfintech.tests.factories import member
from reconciliation.ingestion.tests.factories import TRADE_HEADER, SourceFactory
from reconciliation.models import IngestionBatch, Record

BASE = "/api/v1/ingestion"
D = date.today().isoformat()
GOOD = (TRADE_HEADER + f"T1,{D},A,I,10.00,EUR,\nT2,{D},A,I,5,XXQ,\n").encode()


def key_client(tenant, role=Role.INTEGRATION) -> APIClient:
    created = tenancy_services.api_key_create(
        tenant=tenant, actor=Actor.for_system("t"), name=f"k-{role}", role=role
    )
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Api-Key {created.plaintext}")
    return c


def user_client(tenant, role) -> APIClient:
    c = APIClient()
    c.force_login(member(tenant, role))
    c.defaults["HTTP_X_TENANT"] = tenant.slug
    return c


def upload(c, source, content=GOOD, name="t.csv", **headers):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return c.post(f"{BASE}/sources/{source.pk}/batches/", {"file": SimpleUploadedFile(name, content)},
                  format="multipart", **headers)  # fmt: skip


@pytest.mark.django_db
def test_upload_answers_the_batch_with_totals_and_first_rejections():
    source = SourceFactory()
    response = upload(key_client(source.tenant), source)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["rows_total"], body["rows_accepted"], body["rows_rejected"]) == (
        "loaded",
        2,
        1,
        1,
    )
    assert body["control_totals"]["computed"]["by_currency"]["EUR"]["count"] == 1
    assert body["first_rejections"][0]["reason"] == "unknown_currency"
    again = upload(key_client(source.tenant, Role.ADMIN), source)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")


@pytest.mark.django_db
def test_a_rejected_file_is_422_with_its_reason_and_an_analyst_cannot_upload():
    source = SourceFactory()
    response = upload(key_client(source.tenant), source, content=b"wrong,header\n1,2\n")
    assert response.status_code == 422
    assert response.json()["reject_code"] == "malformed_file"
    assert upload(user_client(source.tenant, Role.ANALYST), source).status_code == 403


@pytest.mark.django_db
def test_idempotency_key_replays_the_first_response():
    source = SourceFactory()
    c = key_client(source.tenant)
    first = upload(c, source, HTTP_IDEMPOTENCY_KEY="up-1")
    second = upload(c, source, HTTP_IDEMPOTENCY_KEY="up-1")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert IngestionBatch.objects.filter(source=source).count() == 1


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_413_with_a_clear_message():
    source = SourceFactory()
    with override_settings(INGEST_MAX_UPLOAD_BYTES=100):
        response = upload(key_client(source.tenant), source, content=b"x" * 500)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "upload_too_large"
    assert "maximum is 100 bytes" in error["message"]
    assert not IngestionBatch.objects.filter(source=source).exists()


@pytest.mark.django_db
def test_push_records_list_batches_filter_rejections_and_reverse():
    source = SourceFactory(format="json")
    c = key_client(source.tenant)
    records = [
        {"external_id": "P1", "business_date": D, "amount": 12.30, "currency": "CHF"},
        {"external_id": "P2", "business_date": "2020-13-01", "amount": "1", "currency": "CHF"},
        {"external_id": "P3", "business_date": D, "amount": "x", "currency": "CHF"},
    ]
    response = c.post(f"{BASE}/sources/{source.pk}/records/", {"records": records}, format="json")
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]
    assert str(Record.objects.get(source=source, external_id="P1").amount) == "12.300000"
    reader = user_client(source.tenant, Role.ANALYST)
    listed = reader.get(f"{BASE}/batches/", {"status": "loaded"}).json()["results"]
    assert [b["id"] for b in listed] == [batch_id]
    rejections = reader.get(f"{BASE}/batches/{batch_id}/rejections/", {"reason": "malformed_amount"}).json()
    assert [(r["line_no"], r["reason"]) for r in rejections["results"]] == [(3, "malformed_amount")]
    assert (
        reader.post(f"{BASE}/batches/{batch_id}/reverse/", {"reason": "x"}, format="json").status_code == 403
    )
    admin = user_client(source.tenant, Role.ADMIN)
    reversed_ = admin.post(f"{BASE}/batches/{batch_id}/reverse/", {"reason": "wrong day"}, format="json")
    assert (reversed_.status_code, reversed_.json()["status"]) == (200, "reversed")
    assert Record.objects.get(source=source, external_id="P1").status == "reversed"
    again = admin.post(f"{BASE}/batches/{batch_id}/reverse/", {"reason": "wrong day"}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_state")


@pytest.mark.django_db
def test_another_tenants_batch_is_404_and_sources_can_be_managed():
    source = SourceFactory()
    other = SourceFactory()
    admin = user_client(source.tenant, Role.ADMIN)
    assert admin.get(f"{BASE}/sources/{other.pk}/").status_code == 404
    created = admin.post(
        f"{BASE}/sources/", {"name": "gl", "kind": "ledger", "format": "json"}, format="json"
    )
    assert created.status_code == 201, created.content
    bad = admin.post(
        f"{BASE}/sources/", {"name": "gl2", "kind": "ledger", "mapping": {"columns": {}}}, format="json"
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_mapping")


@pytest.mark.django_db(transaction=True)
def test_the_same_upload_concurrently_over_the_api_loads_once():
    source = SourceFactory()
    c = key_client(source.tenant)
    statuses, barrier = [], threading.Barrier(2)

    def go():
        barrier.wait()
        try:
            statuses.append(upload(c, source).json()["status"])
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == ["duplicate", "loaded"]
    assert Record.objects.filter(source=source).count() == 1
