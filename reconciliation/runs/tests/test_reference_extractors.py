"""End to end: bank receipts whose invoice number is only in the remittance text match the ledger.

Real files through the ingestion service (a camt.053 and an MT940 of SEPA credits, half of them
without a usable end-to-end reference), a ledger CSV that knows the invoice numbers, then a
bank-vs-ledger run through the same services the chord calls (in-process, as test_matching does),
and the case page of the one receipt the ledger does not know."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from exceptions.models import Case
from exceptions.presentation import records_side_by_side
from jfintech.tenancy.models import Role
from jfintech.tests.factories import TenantFactory, member
from reconciliation.ingestion import services as ingestion
from reconciliation.ingestion.samples import Entry, Statement, camt_chunks
from reconciliation.models import Record
from reconciliation.runs import services
from reconciliation.runs.models import Break, MatchItem, RunStatus
from reconciliation.runs.tests.factories import ACTOR

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = date.today()
DAY = TODAY - timedelta(days=1)
IBAN = "DE89370400440532013000"
INVOICE = r"(?P<ref>INV-\d{4}-\d{4})"
LEDGER_MAPPING = {
    "columns": {"external_id": "doc", "business_date": "posted", "reference": "invoice", "amount": "amount",
                "currency": "ccy", "counterparty": "customer"},
}  # fmt: skip
# Ten receipts: the even ones carry the invoice as their end-to-end id, the odd ones NOTPROVIDED
# with the invoice somewhere in a free remittance text.
RECEIPTS = [(f"INV-2026-{40 + i:04d}", Decimal(f"{100 + 17 * i}.{i:02d}")) for i in range(10)]
CUSTOMERS = ["ACME GmbH", "Globex SA", "Initech BV", "Umbrella AG", "Hooli Ltd"]
UNKNOWN = "INV-2026-0999"  # a receipt the ledger does not know: a break, and a case


def remittance(i: int, invoice: str) -> str:
    return [
        f"Rechnung {invoice} Kd-Nr 4711",
        f"PAYMENT {invoice} THANK YOU",
        f"{invoice}",
        f"Ref. {invoice} / Auftrag 2026-11",
        f"Facture {invoice} du 02.11.2026",
    ][i % 5]


def ledger_csv(tmp_path):
    lines = ["doc,posted,invoice,amount,ccy,customer"]
    for i, (invoice, amount) in enumerate(RECEIPTS):
        lines.append(f"AR-{i},{DAY.isoformat()},{invoice},{amount},EUR,{CUSTOMERS[i % 5]}")
    path = tmp_path / "ledger.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def setup(tmp_path, bank_format: str, bank_mapping: dict):
    tenant = TenantFactory()
    ledger, _ = ingestion.source_upsert(tenant=tenant, actor=ACTOR, name="gl-receivables", kind="ledger",
                                        mapping=LEDGER_MAPPING)  # fmt: skip
    bank, _ = ingestion.source_upsert(tenant=tenant, actor=ACTOR, name="bank", kind="statement",
                                      format=bank_format, mapping=bank_mapping)  # fmt: skip
    batch = ingestion.batch_ingest_file(tenant=tenant, actor=ACTOR, source=ledger, path=ledger_csv(tmp_path))
    assert (batch.status, batch.rows_accepted) == ("loaded", 10)
    definition = services.definition_create(
        tenant=tenant, actor=ACTOR, name="bank-vs-ledger", kind="two_way",
        sources={"left": [ledger], "right": [bank]},
        rules={"passes": [{"name": "invoice", "type": "exact", "keys": ["reference"]}]},
    )  # fmt: skip
    return tenant, bank, definition


def reconcile(tenant, definition):
    run = services.run_start(tenant=tenant, actor=ACTOR, definition=definition, trigger="cli", as_of=TODAY,
                             dispatch=False)  # fmt: skip
    run = services.run_execute_inline(run)
    assert run.status == RunStatus.COMPLETED, run.error
    return run


def matched_references(run) -> dict[str, set[str]]:
    """{bank reference: {"left", "right"}} of every matched record (both sides of a pair)."""
    out: dict[str, set[str]] = {}
    for item in MatchItem.objects.filter(match__run_id=run.pk, match__pass_name="invoice"):
        record = Record.objects.get(pk=item.record_id, business_date=item.business_date)
        out.setdefault(record.reference, set()).add(item.side)
    return out


def assert_all_receipts_matched(run, bank) -> None:
    assert matched_references(run) == {invoice: {"left", "right"} for invoice, _ in RECEIPTS}
    assert (run.records_in_scope, run.matched, run.in_breaks) == (21, 20, 1)
    (only,) = Break.objects.filter(run=run)
    assert (only.break_type, only.reference) == ("missing_left", UNKNOWN)
    assert Record.objects.filter(source=bank).count() == 11


def assert_case_shows_the_extractor(client, tenant, label: str) -> None:
    case = Case.objects.get(tenant=tenant)
    (bank_record,) = case.snapshot["right"]
    assert bank_record["reference_from"] == label
    (row,) = [r for r in records_side_by_side(case)["rows"] if r["field"] == "reference"]
    assert row["values"] == [None, f"{UNKNOWN} (from {label})"]  # the ledger's side is missing
    assert "reference_from" not in [r["field"] for r in records_side_by_side(case)["rows"]]
    client.force_login(member(tenant, Role.ANALYST, username="ana", is_staff=True))
    html = client.get(reverse("admin:exceptions_case_change", args=[case.pk])).content.decode()
    assert f"{UNKNOWN} (from remittance /(?P&lt;ref&gt;INV-\\d{{4}}-\\d{{4}})/)" in html


def test_camt053_receipts_with_notprovided_match_by_the_invoice_in_ustrd(tmp_path, client):
    extractors = [{"field": "end_to_end_id"}, {"field": "remittance", "regex": INVOICE}]
    tenant, bank, definition = setup(tmp_path, "camt053", {"reference_extractors": extractors})

    def entries():
        for i, (invoice, amount) in enumerate(RECEIPTS):
            yield Entry(amount, DAY, ref=f"BK{i:05d}", end_to_end=invoice if i % 2 == 0 else "NOTPROVIDED",
                        counterparty=CUSTOMERS[i % 5], description=remittance(i, invoice))  # fmt: skip
        yield Entry(Decimal("55.00"), DAY, ref="BK09999", description=f"Zahlung {UNKNOWN}")

    statement = Statement("STMT-2026-11", IBAN, "EUR", Decimal("25000.00"), DAY, DAY, entries)
    path = tmp_path / "camt053.xml"
    path.write_text("".join(camt_chunks([statement], version="08")))
    batch = ingestion.batch_ingest_file(tenant=tenant, actor=ACTOR, source=bank, path=path)
    assert (batch.status, batch.rows_accepted) == ("loaded", 11)
    origins = {r.reference: r.attributes.get("reference_from") for r in Record.objects.filter(source=bank)}
    for i, (invoice, _) in enumerate(RECEIPTS):
        assert origins[invoice] == ("end_to_end_id" if i % 2 == 0 else f"remittance /{INVOICE}/"), invoice
    # The bank's own reference stays among the candidates, for the analyst.
    odd = Record.objects.get(source=bank, reference=RECEIPTS[1][0])
    assert odd.attributes["references"]["end_to_end_id"] == "NOTPROVIDED"
    assert odd.attributes["references"]["account_servicer_ref"] == "BK00001"

    assert_all_receipts_matched(reconcile(tenant, definition), bank)
    assert_case_shows_the_extractor(client, tenant, f"remittance /{INVOICE}/")


def swift_wrap(text: str, width: int = 65) -> list[str]:
    """Lines of at most ``width``; a line never starts with '-' or ':' (a tag or the end)."""
    lines = []
    while text:
        cut = min(width, len(text))
        while cut < len(text) and text[cut] in "-:":
            cut -= 1
        lines.append(text[:cut])
        text = text[cut:]
    return lines


def mt940_text() -> str:
    """SEPA credits in an MT940: the even ones name the invoice as the customer reference, the odd
    ones say NONREF and carry it in a :86: wrapped at 65 characters (sometimes inside the number)."""
    lines = [":20:STMT-2026-11", f":25:{IBAN}", ":28C:311/1", f":60F:C{DAY:%y%m%d}EUR25000,00"]
    total, split_invoices = Decimal("25000.00"), 0
    rows = [(invoice, amount, i) for i, (invoice, amount) in enumerate(RECEIPTS)]
    rows.append((UNKNOWN, Decimal("55.00"), 99))
    for invoice, amount, i in rows:
        total += amount
        customer_ref = invoice if i % 2 == 0 and i != 99 else "NONREF"
        head, purpose = f"SEPA-GUTSCHRIFT {CUSTOMERS[i % 5].upper()} ", remittance(i, invoice)
        # Padded (as banks pad their fixed layouts) so that most invoices straddle the 65th column.
        head = head.ljust(58 + i % 4 - purpose.index(invoice))
        text = f"{head}{purpose} END-TO-END NOTPROVIDED"
        wrapped = swift_wrap(text)
        split_invoices += not any(invoice in line for line in wrapped)
        lines.append(
            f":61:{DAY:%y%m%d}{DAY:%m%d}C{str(amount).replace('.', ',')}NTRF{customer_ref}//BK{i:05d}"
        )
        lines.append(f":86:{wrapped[0]}")
        lines.extend(wrapped[1:])
    assert split_invoices >= 2  # the join of the :86: lines is exercised
    lines += [f":62F:C{DAY:%y%m%d}EUR{str(total).replace('.', ',')}", "-"]
    return "\n".join(lines) + "\n"


def test_mt940_receipts_with_nonref_match_by_the_invoice_in_field_86(tmp_path, client):
    extractors = [{"field": "customer_reference"}, {"field": "remittance", "regex": INVOICE}]
    tenant, bank, definition = setup(tmp_path, "mt940", {"reference_extractors": extractors})
    path = tmp_path / "statement.sta"
    path.write_text(mt940_text())
    batch = ingestion.batch_ingest_file(tenant=tenant, actor=ACTOR, source=bank, path=path)
    assert (batch.status, batch.rows_accepted) == ("loaded", 11), batch.reject_reason
    origins = {r.reference: r.attributes.get("reference_from") for r in Record.objects.filter(source=bank)}
    for i, (invoice, _) in enumerate(RECEIPTS):
        assert origins[invoice] == ("customer_reference" if i % 2 == 0 else f"remittance /{INVOICE}/"), (
            invoice
        )

    assert_all_receipts_matched(reconcile(tenant, definition), bank)
    assert_case_shows_the_extractor(client, tenant, f"remittance /{INVOICE}/")
