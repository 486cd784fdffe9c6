"""Bank statements: camt.053/054 (both versions), MT940 and BAI2 — valid files and precise rejections."""

import hashlib
import json
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from reconciliation.ingestion import services
from reconciliation.ingestion.samples import Entry, Statement, bai2_text, camt_chunks, mt940_chunks
from reconciliation.ingestion.tests.factories import ACTOR, SourceFactory
from reconciliation.models import Record, Rejection, StatementBalance

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = date.today()
DAY = TODAY - timedelta(days=1)
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def entries():
    return [
        Entry(D("-100.50"), DAY, ref="E1", end_to_end="E2E-1", counterparty="ACME Ltd", description="INV 1"),
        Entry(D("250.00"), DAY, ref="E2", transactions=[("T-1", D("200.00")), ("T-2", D("50.00"))]),
        Entry(D("20.00"), DAY, ref="E3", reversal=True, instructed=(D("22.00"), "USD", D("1.1"))),
        Entry(D("5.00"), DAY, ref="E4", status="PDNG"),
    ]


def statement(sid="S1", opening=D("1000.00"), closing=None, account="DE89370400440532013000", make=entries):
    return Statement(sid, account, "EUR", opening, DAY, DAY, make, closing=closing)


def write(tmp_path, chunks, name):
    path = tmp_path / name
    path.write_text("".join(chunks))
    return path


def ingest(source, path, fmt="auto"):
    return services.batch_ingest_file(tenant=source.tenant, actor=ACTOR, source=source, path=path, format=fmt)


def bank_source(fmt="camt053"):
    return SourceFactory(kind="statement", format=fmt, mapping={})


def test_vendored_xsds_match_their_manifest():
    manifest = json.loads((SCHEMAS / "MANIFEST.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest, name
    assert len(manifest["files"]) == 4


@pytest.mark.parametrize("version", ["02", "08"])
def test_camt053_loads_booked_entries_splits_batches_and_keeps_details(tmp_path, version):
    source = bank_source()
    batch = ingest(source, write(tmp_path, camt_chunks([statement()], version=version), "s.xml"))
    assert (batch.status, batch.detected_format) == ("loaded", "camt053")
    assert (batch.rows_total, batch.rows_accepted, batch.rows_rejected) == (5, 4, 1)
    assert Rejection.objects.get(batch=batch).reason == "not_booked"
    got = {r.external_id: r for r in Record.objects.filter(source=source)}
    assert sorted(got) == ["S1/E1", "S1/E2/1", "S1/E2/2", "S1/E3"]
    e1 = got["S1/E1"]
    assert (e1.amount, e1.currency, e1.reference, e1.counterparty, e1.business_date) == (
        D("-100.50"),
        "EUR",
        "E2E-1",
        "ACME Ltd",
        DAY,
    )
    assert (got["S1/E2/1"].amount, got["S1/E2/2"].amount) == (D(200), D(50))
    assert got["S1/E2/1"].attributes["batch_entry"] == "S1/E2"
    e3 = got["S1/E3"].attributes
    assert (e3["reversal"], e3["instructed_currency"], e3["exchange_rate"]) == (True, "USD", "1.1")
    declared = batch.declared_totals["statements"][0]
    assert (declared["opening"], declared["closing"], declared["entries"]) == ("1000.00", "1169.50", 3)
    assert StatementBalance.objects.get(batch=batch).closing == D("1169.50")


def test_camt054_notifications_load_without_balances(tmp_path):
    source = bank_source("camt054")
    path = write(tmp_path, camt_chunks([statement("N1")], message="054", version="08"), "n.xml")
    batch = ingest(source, path)
    assert (batch.status, batch.detected_format, batch.rows_accepted) == ("loaded", "camt054", 4)


def test_broken_balance_rejects_every_row_with_the_reason(tmp_path):
    source = bank_source()
    batch = ingest(source, write(tmp_path, camt_chunks([statement(closing=D("1169.49"))]), "s.xml"))
    assert (batch.status, batch.reject_code) == ("rejected", "balance_mismatch")
    assert "closing balance is 1169.49" in batch.reject_reason
    assert batch.rows_total == batch.rows_rejected == 5
    assert not Record.objects.filter(source=source).exists()


def test_continuity_with_the_previous_statement_and_duplicate_statements(tmp_path):
    source = bank_source()
    first = ingest(source, write(tmp_path, camt_chunks([statement("S1")]), "1.xml"))
    assert first.status == "loaded"

    def later():
        return [Entry(D("10.00"), DAY, ref="X1")]

    broken = ingest(
        source, write(tmp_path, camt_chunks([statement("S2", D("1169.00"), make=later)]), "2.xml")
    )
    assert (broken.status, broken.reject_code) == ("rejected", "continuity_break")
    assert "previous statement S1" in broken.reject_reason
    good = ingest(source, write(tmp_path, camt_chunks([statement("S2", D("1169.50"), make=later)]), "3.xml"))
    assert good.status == "loaded"
    resent = camt_chunks([statement("S2", D("1169.50"), make=later)], msg_id="MSG-2")
    again = ingest(source, write(tmp_path, resent, "4.xml"))
    assert (again.status, again.reject_code) == ("rejected", "duplicate_statement")


def test_not_xml_and_schema_violations_are_rejected_precisely(tmp_path):
    source = bank_source()
    text = "".join(camt_chunks([statement()]))
    broken = ingest(source, write(tmp_path, [text.replace("</Stmt>", "</Stmtx>")], "cut.xml"), "camt053")
    assert (broken.status, broken.reject_code) == ("rejected", "malformed_file")
    invalid = text.replace("<CdtDbtInd>DBIT</CdtDbtInd>", "<CdtDbtInd>MINUS</CdtDbtInd>", 1)
    violation = ingest(source, write(tmp_path, [invalid], "bad.xml"))
    assert (violation.status, violation.reject_code) == ("rejected", "schema_violation")
    assert "MINUS" in violation.reject_reason


@pytest.mark.parametrize(
    "attack",
    [
        '<!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
        '<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    ],
)
def test_entity_expansion_and_external_entities_are_refused(tmp_path, attack):
    source = bank_source()
    text = "".join(camt_chunks([statement()]))
    text = text.replace("?>\n", "?>\n" + attack + "\n", 1).replace(
        "<MsgId>MSG-1</MsgId>", "<MsgId>&c;&xxe;</MsgId>"
    )
    batch = ingest(source, write(tmp_path, [text], "evil.xml"), "camt053")
    assert (batch.status, batch.reject_code) == ("rejected", "forbidden_xml")
    assert batch.rows_total == 0


def test_mt940_signs_reversals_and_checks_balances(tmp_path):
    source = bank_source("mt940")

    def mt_entries():
        return [
            Entry(D("-100.50"), DAY, ref="B1", end_to_end="C1", description="Payment"),
            Entry(D("-20.00"), DAY, ref="B2", reversal=True),  # RC: reversal of a credit, a debit
            Entry(D("30.00"), DAY, ref="B3", reversal=True),
        ]  # RD: reversal of a debit, a credit

    batch = ingest(source, write(tmp_path, mt940_chunks([statement("940-1", make=mt_entries)]), "s.sta"))
    assert (batch.status, batch.detected_format, batch.rows_accepted) == ("loaded", "mt940", 3)
    amounts = sorted(Record.objects.filter(source=source).values_list("amount", flat=True))
    assert amounts == [D("-100.50"), D("-20.00"), D("30.00")]
    assert Rejection.objects.filter(batch=batch).count() == 0
    line = Record.objects.get(source=source, amount=D("-100.50")).line_no
    assert line == 5
    bad = ingest(
        source, write(tmp_path, mt940_chunks([statement("940-2", closing=D("1"), make=mt_entries)]), "b.sta")
    )
    assert (bad.status, bad.reject_code) == ("rejected", "balance_mismatch")
    garbage = ingest(source, write(tmp_path, [":20:X\n:25:ACC\n:28C:1\n:60F:garbage\n"], "g.sta"), "mt940")
    assert garbage.status == "rejected"


def test_bai2_loads_with_control_totals_and_a_broken_total_is_rejected(tmp_path):
    source = bank_source("bai2")
    text = bai2_text([statement("B", make=lambda: entries()[:3])], as_of=DAY)
    batch = ingest(source, write(tmp_path, [text], "f.bai"))
    assert (batch.status, batch.detected_format, batch.rows_accepted) == ("loaded", "bai2", 3)
    assert batch.declared_totals["number_of_records"] == 9
    assert sorted(Record.objects.filter(source=source).values_list("amount", flat=True)) == [
        D("-100.50"),
        D("20.00"),
        D("250.00"),
    ]
    tampered = bai2_text(
        [statement("B", make=lambda: entries()[:3])], as_of=DAY, file_id="F2", tamper_total=1
    )
    bad = ingest(source, write(tmp_path, [tampered], "t.bai"))
    assert (bad.status, bad.reject_code) == ("rejected", "control_total_mismatch")


def test_statement_rows_out_of_window_or_in_an_unknown_currency_are_rejected_row_by_row(tmp_path):
    source = bank_source()
    old = TODAY - timedelta(days=365 * 5)

    def odd_entries():
        return [Entry(D("10.00"), DAY, ref="OK"), Entry(D("5.00"), old, ref="OLD")]

    text = "".join(camt_chunks([statement("W1", make=odd_entries)]))
    text = text.replace('<Amt Ccy="EUR">10.00</Amt><CdtDbtInd>', '<Amt Ccy="XYZ">10.00</Amt><CdtDbtInd>')
    batch = ingest(source, write(tmp_path, [text], "w.xml"))
    assert batch.status == "rejected"  # every row rejected, each with its own reason
    assert dict(Rejection.objects.filter(batch=batch).values_list("line_no", "reason")) == {
        1: "unknown_currency",
        2: "out_of_window",
    }
    mt = bank_source("mt940")
    loaded = ingest(mt, write(tmp_path, mt940_chunks([statement("940-W", make=odd_entries)]), "w.sta"))
    assert (loaded.status, loaded.rows_accepted, loaded.rows_rejected) == ("loaded", 1, 1)
    assert Rejection.objects.get(batch=loaded).reason == "out_of_window"


def test_a_bai2_file_that_is_not_bai2_is_rejected_as_malformed(tmp_path):
    source = bank_source("bai2")
    batch = ingest(source, write(tmp_path, ["01,SENDER,RECEIVER\n99,garbage/\n"], "x.bai"), "bai2")
    assert (batch.status, batch.reject_code) == ("rejected", "malformed_file")
