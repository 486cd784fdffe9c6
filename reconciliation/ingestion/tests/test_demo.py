import io

import pytest

from reconciliation.ingestion.demo import seed_ingestion_demo
from reconciliation.models import IngestionBatch, Record, Rejection


@pytest.mark.django_db(transaction=True)
def test_demo_month_loads_through_ingestion_with_realistic_breaks_and_is_idempotent():
    out = io.StringIO()
    seed_ingestion_demo(out)
    batches = {
        b.source.name: b for b in IngestionBatch.objects.filter(tenant__slug="demo").select_related("source")
    }
    assert set(batches) == {
        "fo-trades",
        "custodian-settlements",
        "custody-positions",
        "gl-cash",
        "bank-camt053",
    }
    assert all(b.status == "loaded" for b in batches.values()), {
        n: b.reject_reason for n, b in batches.items()
    }
    reasons = set(
        Rejection.objects.filter(batch=batches["custodian-settlements"]).values_list("reason", flat=True)
    )
    assert reasons == {"duplicate_key", "malformed_amount"}
    assert len(batches["bank-camt053"].declared_totals["statements"]) >= 15
    count = Record.objects.filter(tenant__slug="demo").count()
    assert count > 1000
    seed_ingestion_demo(io.StringIO())
    assert Record.objects.filter(tenant__slug="demo").count() == count
    assert IngestionBatch.objects.filter(tenant__slug="demo").count() == 5
