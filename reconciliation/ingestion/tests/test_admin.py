from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reconciliation.ingestion.tests.factories import TRADE_HEADER, SourceFactory
from reconciliation.models import IngestionBatch, Record

pytestmark = pytest.mark.django_db

D = date.today().isoformat()


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


def test_upload_from_the_admin_then_see_the_batch_with_rejections_and_reverse_it(admin_client):
    source = SourceFactory()
    assert "Upload a file" in admin_client.get("/admin/reconciliation/datasource/").content.decode()
    content = (TRADE_HEADER + f"T1,{D},A,I,10,EUR,\nT2,{D},A,I,ten,EUR,\n").encode()
    upload = {"file": SimpleUploadedFile("t.csv", content), "format": "auto"}
    response = admin_client.post(f"/admin/reconciliation/datasource/{source.pk}/upload/", upload)
    batch = IngestionBatch.objects.get(source=source)
    assert response.status_code == 302
    assert response.url.endswith(f"/admin/reconciliation/ingestionbatch/{batch.pk}/change/")
    page = admin_client.get(response.url).content.decode()
    assert "malformed_amount" in page
    assert "ten" in page
    listing = admin_client.get("/admin/reconciliation/ingestionbatch/?status=loaded").content.decode()
    assert "t.csv" in listing
    reverse = {"action": "reverse_batches", "_selected_action": [batch.pk]}
    asked = admin_client.post("/admin/reconciliation/ingestionbatch/", reverse)
    assert "Why are these batches reversed?" in asked.content.decode()  # a reason first
    batch.refresh_from_db()
    assert batch.status == "loaded"
    admin_client.post(
        "/admin/reconciliation/ingestionbatch/", {**reverse, "apply": "1", "reason": "wrong file"}
    )
    batch.refresh_from_db()
    assert (batch.status, batch.reverse_reason) == ("reversed", "wrong file")
    assert Record.objects.get(source=source).status == "reversed"


def test_a_source_with_an_invalid_mapping_is_refused_by_the_admin_form(admin_client):
    tenant = SourceFactory().tenant
    response = admin_client.post("/admin/reconciliation/datasource/add/", {
        "tenant": tenant.pk, "name": "gl", "kind": "ledger", "format": "csv",
        "mapping": '{"columns": {"external_id": "id"}}', "connector": "{}", "is_active": "on",
    })  # fmt: skip
    assert response.status_code == 200
    assert "columns must map" in response.content.decode()
