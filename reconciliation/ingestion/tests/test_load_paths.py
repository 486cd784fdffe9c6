"""The two load paths (loader.py): the direct COPY into the record table, and the staged path it
hands over to when the database, not the row, decides (a repeated or already-loaded key, a missing
partition, many rejections). Either way: one outcome, nothing left behind by the attempt."""

from datetime import date

import pytest
from django.db import IntegrityError, connection, transaction
from prometheus_client import REGISTRY

from reconciliation import partitions
from reconciliation.ingestion import loader
from reconciliation.ingestion.tests.factories import TRADE_HEADER, SourceFactory
from reconciliation.ingestion.tests.test_services import active, ingest, reasons, write
from reconciliation.models import IngestionBatch

pytestmark = pytest.mark.django_db(transaction=True)

D = date.today().isoformat()


def staged(why: str) -> float:
    return REGISTRY.get_sample_value("ingest_batches_staged_total", {"kind": "trade", "why": why}) or 0


def path_taken(batch) -> str:
    return "staged" if "stage_s" in batch.timings else "direct"


def test_a_clean_file_goes_direct_and_a_repeated_key_makes_the_file_take_the_staged_path(tmp_path):
    source = SourceFactory()
    clean = ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,10,EUR,\nT2,{D},A,I,x,EUR,\n", "a"))
    assert (path_taken(clean), clean.rows_accepted, reasons(clean)) == ("direct", 1, {3: "malformed_amount"})

    rows = f"T3,{D},A,I,1,EUR,\nT4,{D},A,I,2,EUR,\nT3,{D},A,I,3,EUR,\n"
    before = staged("duplicate_key")
    repeated = ingest(source, write(tmp_path, TRADE_HEADER + rows, "b.csv"))
    assert staged("duplicate_key") == before + 1  # counted: a slower load the on-call can see
    assert path_taken(repeated) == "staged"
    assert "direct_attempt_s" in repeated.timings
    assert (repeated.status, repeated.rows_accepted, reasons(repeated)) == ("loaded", 2, {4: "duplicate_key"})
    # The direct attempt's rows were rolled back: exactly the accepted rows are there, once.
    assert sorted(active(source).values_list("external_id", "amount")) == [("T1", 10), ("T3", 1), ("T4", 2)]
    assert repeated.computed_totals["by_currency"]["EUR"] == {"count": 2, "amount": "3", "quantity": "0"}


def test_a_key_already_loaded_hands_over_to_the_staged_path(tmp_path):
    source = SourceFactory()
    ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,10,EUR,\n", "a.csv"))
    again = ingest(
        source, write(tmp_path, TRADE_HEADER + f"T2,{D},A,I,5,EUR,\nT1,{D},A,I,10,EUR,\n", "b.csv")
    )
    assert (path_taken(again), again.rows_accepted, reasons(again)) == ("staged", 1, {3: "duplicate_key"})
    assert active(source).count() == 2


def test_more_rejections_than_the_direct_path_holds_go_through_staging(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "DIRECT_MAX_REJECTIONS", 2)
    before = staged("many_rejections")
    source = SourceFactory()
    rows = "".join(f"B{i},{D},A,I,not-a-number,EUR,\n" for i in range(3)) + f"G1,{D},A,I,1,EUR,\n"
    batch = ingest(source, write(tmp_path, TRADE_HEADER + rows))
    assert path_taken(batch) == "staged"
    assert (batch.rows_total, batch.rows_accepted, batch.rows_rejected) == (4, 1, 3)
    assert set(reasons(batch).values()) == {"malformed_amount"}
    assert staged("many_rejections") == before + 1


def test_a_month_without_its_partition_is_created_by_the_staged_path(tmp_path):
    source = SourceFactory()
    before = staged("no_partition")
    month = partitions.add_months(partitions.month_start(date.today()), -20)
    name = partitions.partition_name(month)
    if name in partitions.existing_partitions():  # the test database is reused between runs
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE "{name}"')
    batch = ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{month.isoformat()},A,I,10,EUR,\n"))
    assert (path_taken(batch), batch.status, batch.rows_accepted) == ("staged", "loaded", 1)
    assert staged("no_partition") == before + 1
    assert name in partitions.existing_partitions()


def test_a_batch_with_records_cannot_be_deleted_only_reversed(tmp_path):
    source = SourceFactory()
    batch = ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,10,EUR,\n"))
    with pytest.raises(IntegrityError, match="reverse it, never delete it"), transaction.atomic():
        IngestionBatch.objects.filter(pk=batch.pk).delete()
    empty = IngestionBatch.objects.create(tenant=source.tenant, source=source, sha256="f" * 64)
    IngestionBatch.objects.filter(pk=empty.pk).delete()  # a batch without records may go
    assert IngestionBatch.objects.filter(pk=batch.pk).exists()
