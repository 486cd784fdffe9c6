import io

import pytest

from reconciliation.ingestion.demo import INVOICE, seed_ingestion_demo
from reconciliation.models import IngestionBatch, Record, Rejection

SOURCES = {
    "fo-trades",
    "custodian-settlements",
    "custody-positions",
    "gl-cash",
    "bank-camt054",
    "bank-camt053",
}


@pytest.mark.django_db(transaction=True)
def test_demo_month_loads_through_ingestion_with_realistic_breaks_and_is_idempotent():
    out = io.StringIO()
    seed_ingestion_demo(out)
    batches = {
        b.source.name: b for b in IngestionBatch.objects.filter(tenant__slug="demo").select_related("source")
    }
    assert set(batches) == SOURCES
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
    assert IngestionBatch.objects.filter(tenant__slug="demo").count() == len(SOURCES)


@pytest.mark.django_db(transaction=True)
def test_demo_data_shows_keys_signs_re_reports_and_reference_extractors_at_work():
    out = io.StringIO()
    seed_ingestion_demo(out)
    batches = {
        b.source.name: b for b in IngestionBatch.objects.filter(tenant__slug="demo").select_related("source")
    }

    # Positions without a row id, keyed by (account, isin, as_of): every row loaded, none a duplicate.
    positions = Record.objects.filter(batch=batches["custody-positions"])
    assert batches["custody-positions"].rows_rejected == 0
    assert positions.count() == batches["custody-positions"].rows_total > 100
    for p in positions[:50]:
        assert p.external_id == f"{p.account}|{p.instrument}|{p.business_date.isoformat()}"

    # Trades: unsigned numbers signed by the side column (a sell delivers shares and receives cash).
    trades = Record.objects.filter(batch=batches["fo-trades"])
    sells, buys = trades.filter(attributes__side="SELL"), trades.filter(attributes__side="BUY")
    assert sells.exists()
    assert buys.exists()
    assert not sells.filter(quantity__gte=0).exists()
    assert not sells.filter(amount__lte=0).exists()
    assert not buys.filter(quantity__lte=0).exists()
    assert not buys.filter(amount__gte=0).exists()

    # The statement re-reports the intraday notifications: each such entry loaded once, the
    # statement's copy stored linked to the notification's record.
    notified, statement = batches["bank-camt054"], batches["bank-camt053"]
    assert statement.rows_linked == notified.rows_accepted > 0
    linked = Record.objects.filter(batch=statement, status="linked")
    assert linked.count() == statement.rows_linked
    assert set(linked.values_list("attributes__linked_batch", flat=True)) == {notified.pk}
    assert f"{statement.rows_linked} linked (notified intraday)" in out.getvalue()

    # Half the receipts say NOTPROVIDED: their invoice number comes from the remittance text.
    bank = Record.objects.filter(batch__in=[notified, statement])
    from_remittance = bank.filter(attributes__reference_from=f"remittance /{INVOICE}/")
    assert from_remittance.count() > 50
    for r in from_remittance[:20]:
        assert r.attributes["references"]["end_to_end_id"] == "NOTPROVIDED"
        assert r.reference.startswith("INV-")
        assert r.reference in r.attributes["references"]["remittance"]
    assert bank.filter(attributes__reference_from="end_to_end_id", reference__startswith="INV-").exists()
    fees = bank.filter(attributes__reference_from="account_servicer_ref")
    assert fees.exists()
    assert all(r.reference.startswith("FEE") for r in fees)
