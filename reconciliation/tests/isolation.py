"""Isolation registrations of the ingestion API (see jfintech.testing.isolation)."""

from datetime import date

from django.core.files.uploadedfile import SimpleUploadedFile

from jfintech.testing.isolation import session_setup, tenant_object
from reconciliation.ingestion import services
from reconciliation.ingestion.tests.factories import ACTOR, TRADE_HEADER, SourceFactory
from reconciliation.partitions import add_months, ensure_partitions, month_start


@session_setup
def record_partitions() -> None:
    # As reconciliation/ingestion/tests/conftest.py: a batch's load needs the window's partitions.
    today = month_start(date.today())
    ensure_partitions(add_months(today, -25), add_months(today, 5))


def _upload() -> dict:
    # A fresh file per request (an upload is consumed when read); multipart because of the file.
    return {"file": SimpleUploadedFile("trades.csv", TRADE_HEADER.encode(), content_type="text/csv")}


@tenant_object(
    "ingestion-source-detail",
    "ingestion-batch-upload",
    "ingestion-records-push",
    bodies={"ingestion-batch-upload": _upload, "ingestion-records-push": {"records": []}},
)
def a_source(tenant) -> dict:
    return {"source_id": SourceFactory(tenant=tenant).pk}


@tenant_object(
    "ingestion-batch-detail",
    "ingestion-rejection-list",
    "ingestion-batch-reverse",
    bodies={"ingestion-batch-reverse": {"reason": "probe"}},
)
def a_batch(tenant) -> dict:
    source = SourceFactory(tenant=tenant, format="json")
    rejected = {"external_id": "X1", "business_date": "2020-13-01", "amount": "1", "currency": "CHF"}
    batch = services.batch_ingest_records(tenant=tenant, actor=ACTOR, source=source, records=[rejected])
    return {"batch_id": batch.pk}


from reconciliation.matching.tests import isolation as matching_isolation  # noqa: E402,F401  (matching API)
from reconciliation.runs.tests import isolation as runs_isolation  # noqa: E402,F401  (runs API)
