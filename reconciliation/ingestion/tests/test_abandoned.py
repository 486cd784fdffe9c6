"""A batch whose loading process died (killed, its connection lost) before closing it is closed as
failed, code ``abandoned``, by beat's ingestion.fail_abandoned_batches; a batch being loaded is not.
The fault itself (the uploading process killed mid-load) is a trial of the fault suite
(reconciliation/runs/tests/test_chaos.py)."""

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from jfintech.audit.models import AuditEvent
from reconciliation.ingestion import services
from reconciliation.ingestion.tests.factories import ACTOR, TRADE_HEADER, SourceFactory
from reconciliation.models import IngestionBatch

Status = IngestionBatch.Status


def _open_batch(source, status=Status.RECEIVED, age_s=120) -> IngestionBatch:
    batch = IngestionBatch.objects.create(
        tenant=source.tenant, source=source, file_name="f.csv", sha256="0" * 64, size_bytes=10,
        detected_format="csv", status=status,
    )  # fmt: skip
    IngestionBatch.objects.filter(pk=batch.pk).update(received_at=timezone.now() - timedelta(seconds=age_s))
    return batch


@pytest.mark.django_db
def test_an_open_batch_nobody_loads_is_failed_as_abandoned_and_a_loading_one_is_left():
    source = SourceFactory()
    abandoned = _open_batch(source)
    validated = _open_batch(source, status=Status.VALIDATED)
    young = _open_batch(source, age_s=5)  # between its receipt and its loading lock
    loading = _open_batch(source)
    other = connections.create_connection("default")  # the live load's session holds its lock
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [services._LOADING_NAMESPACE, loading.pk])
        assert sorted(services.batches_fail_abandoned()) == sorted([abandoned.pk, validated.pk])
    finally:
        other.close()
    for batch in (abandoned, validated):
        batch.refresh_from_db()
        assert (batch.status, batch.reject_code) == (Status.FAILED, "abandoned")
        assert batch.completed_at is not None
        assert AuditEvent.objects.filter(action="batch.failed", object_id=str(batch.pk)).count() == 1
    assert IngestionBatch.objects.get(pk=young.pk).status == Status.RECEIVED
    assert IngestionBatch.objects.get(pk=loading.pk).status == Status.RECEIVED
    assert services.batches_fail_abandoned() == [loading.pk]  # its session ended: abandoned now
    assert services.batches_fail_abandoned() == []


@pytest.mark.django_db
def test_a_load_holds_its_batch_lock_and_releases_it(tmp_path):
    source = SourceFactory()
    path = tmp_path / "t.csv"
    path.write_text(TRADE_HEADER + f"T1,{timezone.now().date()},A,I,10.00,EUR,\n")
    batch = services.batch_ingest_file(tenant=source.tenant, actor=ACTOR, source=source, path=path)
    assert batch.status == Status.LOADED
    with connections["default"].cursor() as cursor:
        # pg_locks is the whole server's: other databases' loads (other test runs) are not ours.
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
                       " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                       [services._LOADING_NAMESPACE])  # fmt: skip
        assert cursor.fetchone()[0] == 0
