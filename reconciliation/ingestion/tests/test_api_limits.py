"""The upload and push size limits: one limit per endpoint, named by the setting that sets it, the
same for a Content-Length body and a chunked one (against a real gunicorn: the test client cannot
send a chunked body); an empty push is 422 empty_file."""

import json
from datetime import date

import pytest
import requests
from django.test import override_settings
from urllib3 import encode_multipart_formdata

from jfintech.audit import Actor
from jfintech.tenancy import services as tenancy_services
from jfintech.tenancy.models import Role
from jfintech.testing.processes import gunicorn_server, wait_until
from reconciliation.ingestion.tests.factories import TRADE_HEADER, SourceFactory
from reconciliation.ingestion.tests.test_apis import BASE, key_client
from reconciliation.models import IngestionBatch, Record

D = date.today().isoformat()


def records(n: int) -> dict:
    return {"records": [{"external_id": f"P{i}", "business_date": D, "amount": "1.00", "currency": "EUR"}
                        for i in range(n)]}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("limits", "setting"),
    [
        (
            {"DATA_UPLOAD_MAX_MEMORY_SIZE": 300, "INGEST_MAX_UPLOAD_BYTES": 10_000},
            "DATA_UPLOAD_MAX_MEMORY_SIZE",
        ),
        ({"DATA_UPLOAD_MAX_MEMORY_SIZE": 10_000, "INGEST_MAX_UPLOAD_BYTES": 300}, "INGEST_MAX_UPLOAD_BYTES"),
        ({"DATA_UPLOAD_MAX_MEMORY_SIZE": None, "INGEST_MAX_UPLOAD_BYTES": 300}, "INGEST_MAX_UPLOAD_BYTES"),
    ],
)
def test_a_push_over_the_limit_names_the_setting_that_decided(limits, setting):
    source = SourceFactory(format="json")
    with override_settings(**limits):
        response = key_client(source.tenant).post(
            f"{BASE}/sources/{source.pk}/records/", records(10), format="json"
        )
    assert response.status_code == 413, response.content
    error = response.json()["error"]
    assert (error["code"], error["details"]["setting"], error["details"]["max_bytes"]) == (
        "upload_too_large",
        setting,
        300,
    )
    assert f"the maximum is 300 bytes ({setting})" in error["message"]
    assert f"raise {setting}" in error["message"]
    assert not IngestionBatch.objects.filter(source=source).exists()


@pytest.mark.django_db
def test_an_empty_push_is_422_empty_file():
    source = SourceFactory(format="json")
    response = key_client(source.tenant).post(
        f"{BASE}/sources/{source.pk}/records/", {"records": []}, format="json"
    )
    assert response.status_code == 422, response.content
    assert (response.json()["status"], response.json()["reject_code"]) == ("rejected", "empty_file")


@pytest.fixture
def small_limit_server(tmp_path):
    process = gunicorn_server(tmp_path, OTEL_TRACES_EXPORTER="none", INGEST_MAX_UPLOAD_BYTES=2000).start()
    url = process.extra["url"]

    def up():
        try:
            return requests.get(f"{url}/livez", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=60, interval=0.2, message=f"gunicorn not up:\n{process.tail()}")
        yield url
    finally:
        process.stop()


def chunked(body: bytes):
    """requests sends a generator as Transfer-Encoding: chunked, without a Content-Length."""
    for i in range(0, len(body), 100):
        yield body[i : i + 100]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_one_limit_for_both_transfer_encodings_against_gunicorn(small_limit_server):
    source = SourceFactory(format="json")
    key = tenancy_services.api_key_create(tenant=source.tenant, actor=Actor.for_system("t"), name="k",
                                          role=Role.INTEGRATION)  # fmt: skip
    headers = {"Authorization": f"Api-Key {key.plaintext}", "Content-Type": "application/json"}
    push = f"{small_limit_server}{BASE}/sources/{source.pk}/records/"
    small, large = json.dumps(records(5)).encode(), json.dumps(records(40)).encode()
    assert len(small) < 2000 < len(large)

    by_length = requests.post(push, data=small, headers=headers, timeout=30)
    assert by_length.status_code == 201, by_length.text
    by_chunks = requests.post(push, data=chunked(small), headers=headers, timeout=30)
    # The same records, read whole from the chunks: the same canonical JSON, so a duplicate batch.
    assert (by_chunks.status_code, by_chunks.json()["status"]) == (200, "duplicate"), by_chunks.text
    assert Record.objects.filter(source=source).count() == 5

    too_large = [
        requests.post(push, data=large, headers=headers, timeout=30),
        requests.post(push, data=chunked(large), headers=headers, timeout=30),
    ]
    assert [r.status_code for r in too_large] == [413, 413], [r.text for r in too_large]
    for response in too_large:
        error = response.json()["error"]
        assert (error["code"], error["details"]["setting"], error["details"]["max_bytes"]) == (
            "upload_too_large",
            "INGEST_MAX_UPLOAD_BYTES",
            2000,
        )

    # A multipart upload sent chunked is read the same way.
    csv_source = SourceFactory(tenant=source.tenant)
    body, content_type = encode_multipart_formdata(
        {"file": ("t.csv", (TRADE_HEADER + f"T1,{D},A,I,10,EUR,\n").encode())}
    )
    upload = requests.post(
        f"{small_limit_server}{BASE}/sources/{csv_source.pk}/batches/", data=chunked(body),
        headers={"Authorization": headers["Authorization"], "Content-Type": content_type}, timeout=30,
    )  # fmt: skip
    assert (upload.status_code, upload.json()["rows_accepted"]) == (201, 1), upload.text


@pytest.mark.django_db
def test_a_cut_file_uploaded_with_an_idempotency_key_is_422_and_leaves_nothing_inside_the_request():
    """With Idempotency-Key the load runs inside the request's transaction (a savepoint)."""
    from reconciliation.ingestion.samples import camt_chunks
    from reconciliation.ingestion.tests.test_apis import upload
    from reconciliation.ingestion.tests.test_empty_and_cut_files import two_statements
    from reconciliation.models import StatementBalance

    source = SourceFactory(kind="statement", format="camt053", mapping={})
    data = "".join(camt_chunks(two_statements())).encode()
    c = key_client(source.tenant)
    cut = upload(
        c, source, content=data[: data.index(b"<NtryRef>B3")], name="s.xml", HTTP_IDEMPOTENCY_KEY="cut-1"
    )
    assert (cut.status_code, cut.json()["reject_code"]) == (422, "truncated_file"), cut.content
    assert not Record.objects.filter(source=source).exists()
    assert not StatementBalance.objects.filter(source=source).exists()
    complete = upload(c, source, content=data, name="s.xml", HTTP_IDEMPOTENCY_KEY="full-1")
    assert (complete.status_code, complete.json()["rows_accepted"]) == (201, 10), complete.content
