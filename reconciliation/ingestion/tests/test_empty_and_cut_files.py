"""Truncated and empty deliveries, case by case (the property over random cuts: test_truncation.py)."""

import io
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.test import override_settings

from jfintech.audit.models import AuditEvent
from reconciliation.ingestion import services
from reconciliation.ingestion.config_file import ConfigError, config_apply, load_document
from reconciliation.ingestion.samples import Entry, Statement, bai2_text, camt_chunks, mt940_chunks
from reconciliation.ingestion.tests.factories import ACTOR, TRADE_HEADER, SourceFactory
from reconciliation.models import DataSource, IngestionBatch, Record, Rejection, StatementBalance

pytestmark = pytest.mark.django_db(transaction=True)

DAY = date.today() - timedelta(days=1)
T = DAY.isoformat()
IBAN = "DE89370400440532013000"


def ingest(source, data: bytes, fmt="auto"):
    return services.batch_ingest_file(
        tenant=source.tenant, actor=ACTOR, source=source, fileobj=io.BytesIO(data), file_name="f", format=fmt
    )


def nothing_loaded(source, batch, code="truncated_file"):
    assert (batch.status, batch.reject_code) == ("rejected", code), batch.reject_reason
    assert (batch.rows_total, batch.rows_accepted, batch.rows_rejected) == (0, 0, 0)
    assert not Record.objects.filter(source=source).exists()
    assert not Rejection.objects.filter(batch=batch).exists()
    assert not StatementBalance.objects.filter(source=source).exists()
    return True


def two_statements(n=5):
    def entries(prefix):
        return lambda: [Entry(D(f"{i}.00"), DAY, ref=f"{prefix}{i}") for i in range(1, n + 1)]

    first = Statement("S1", IBAN, "EUR", D("1000.00"), DAY, DAY, entries("A"))
    return [first, Statement("S2", IBAN, "EUR", first.closing_balance(), DAY, DAY, entries("B"), sequence=2)]


def bank(fmt):
    return SourceFactory(kind="statement", format=fmt, mapping={})


@pytest.mark.parametrize("version", ["02", "08"])
def test_a_camt053_cut_inside_its_second_statement_loads_nothing_and_the_complete_file_loads_after(version):
    """The issue's case: 7 of 10 entries loaded as 201, then the complete file was a duplicate_statement."""
    data = "".join(camt_chunks(two_statements(), version=version)).encode()
    source = bank("camt053")
    cut = data.index(b"<NtryRef>B3</NtryRef>")  # inside the second statement, after 7 entries
    batch = ingest(source, data[:cut])
    assert nothing_loaded(source, batch)
    assert "</Document>" in batch.reject_reason
    assert AuditEvent.objects.filter(object_id=str(batch.pk), action="batch.rejected").exists()
    complete = ingest(source, data)
    assert (complete.status, complete.rows_accepted) == ("loaded", 10), complete.reject_reason
    assert StatementBalance.objects.filter(batch=complete).count() == 2


def test_an_unclosed_camt_document_without_entries_is_cut_not_an_empty_load():
    data = "".join(camt_chunks(two_statements())).encode()
    source = bank("camt053")
    assert nothing_loaded(source, ingest(source, data[: data.index(b"<Stmt>")]))


def test_the_staged_path_leaves_nothing_of_a_cut_file_either():
    """A key repeated in the file hands the load to the staged path, which parses again: the cut is
    found there too, and the temp rows go with the rolled-back transaction."""
    source = SourceFactory()
    data = (TRADE_HEADER + f"T1,{T},A,I,10,EUR,\nT1,{T},A,I,10,EUR,\nT2,{T},A,I,12.50,EUR,\n").encode()
    batch = ingest(source, data[:-4])  # "12.5" of "12.50"
    assert nothing_loaded(source, batch)
    complete = ingest(source, data)
    assert (complete.status, complete.rows_accepted, complete.rows_rejected) == ("loaded", 2, 1)
    assert "stage_s" in complete.timings  # the staged path took it


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("csv", b""),
        ("csv", TRADE_HEADER.encode()),  # a header and no rows
        ("camt053", b"\n  \n"),
        ("mt940", b"\xef\xbb\xbf\r\n"),
        ("bai2", b""),
        ("json", b'{"records": []}'),
        ("json", b"[]"),
    ],
)
def test_an_empty_delivery_is_rejected_unless_the_source_accepts_empty_deliveries(fmt, data):
    source = SourceFactory(format=fmt, kind="trade" if fmt in ("csv", "json") else "statement",
                           **({} if fmt == "csv" else {"mapping": {}}))  # fmt: skip
    batch = ingest(source, data, fmt=fmt)
    assert nothing_loaded(source, batch, code="empty_file")
    assert "accept_empty" in batch.reject_reason
    source.accept_empty = True
    source.save()
    accepted = ingest(source, data, fmt=fmt)
    assert (accepted.status, accepted.rows_total, accepted.reject_code) == ("loaded", 0, "")
    assert ingest(source, data, fmt=fmt).status == "duplicate"  # the rejected attempt did not count


def test_a_pushed_empty_record_list_is_empty_too():
    source = SourceFactory(format="json")
    batch = services.batch_ingest_records(tenant=source.tenant, actor=ACTOR, source=source, records=[])
    assert nothing_loaded(source, batch, code="empty_file")


def test_a_statement_without_entries_is_not_an_empty_delivery():
    source = bank("camt053")
    data = "".join(camt_chunks([Statement("Q1", IBAN, "EUR", D("5.00"), DAY, DAY, list)])).encode()
    batch = ingest(source, data)
    assert (batch.status, batch.rows_total) == ("loaded", 0)
    assert StatementBalance.objects.get(batch=batch).closing == D("5.00")


CSV = TRADE_HEADER + f"T1,{T},A,I,100.50,EUR,\nT2,{T},A,I,7,EUR,1\n"


def csv_source(last_line_break="required"):
    from reconciliation.ingestion.tests.factories import TRADE_MAPPING

    return SourceFactory(mapping={**TRADE_MAPPING, "last_line_break": last_line_break})


def test_csv_a_last_line_without_its_line_break_is_a_cut_by_default():
    source = csv_source()
    batch = ingest(source, CSV[: CSV.index("100.50") + 4].encode())  # "100." : a cut amount
    assert nothing_loaded(source, batch)
    assert "line 2 (the last) has no line break" in batch.reject_reason
    complete_row_no_break = ingest(source, CSV.rstrip("\n").encode())
    assert nothing_loaded(source, complete_row_no_break)  # the rule cannot tell: refused
    assert ingest(source, CSV.encode()).rows_accepted == 2


def test_csv_optional_last_line_break_still_refuses_a_short_last_row_and_an_open_quote():
    source = csv_source("optional")
    short = ingest(source, CSV[: CSV.index(",EUR,1")].encode())
    assert nothing_loaded(source, short)
    assert "has 5 of the header's 7 columns" in short.reject_reason
    quoted = TRADE_HEADER + f'T1,{T},A,"I\nstill open'
    assert nothing_loaded(source, ingest(source, quoted.encode()))
    loaded = ingest(source, CSV.rstrip("\n").encode())  # RFC 4180: the last line break is optional
    assert (loaded.status, loaded.rows_accepted) == ("loaded", 2)


def test_csv_an_open_quote_in_the_middle_runs_to_the_end_and_is_a_cut():
    source = csv_source()
    data = TRADE_HEADER + f'T1,{T},A,"I,100,EUR,\nT2,{T},A,I,7,EUR,1\n'
    batch = ingest(source, data.encode())
    assert nothing_loaded(source, batch)
    assert "quoted field opened on line 2" in batch.reject_reason


def test_csv_a_cut_at_a_row_boundary_is_a_complete_shorter_file():
    """The documented limit: without a trailer or a count, no reader can tell this file was longer."""
    source = csv_source()
    batch = ingest(source, CSV[: CSV.index("T2")].encode())
    assert (batch.status, batch.rows_accepted) == ("loaded", 1)


def test_csv_a_multibyte_character_cut_at_the_end_is_a_cut():
    columns = {"external_id": "id", "business_date": "d", "amount": "a", "description": "note"}
    source = SourceFactory(mapping={"columns": columns, "default_currency": "EUR"})
    data = f"id,d,a,note\nT1,{T},1,café\n".encode()
    assert nothing_loaded(source, ingest(source, data[: data.index(b"\xa9")]))


def test_mt940_without_its_closing_dash_or_closing_balance_is_a_cut():
    source = bank("mt940")
    text = "".join(mt940_chunks(two_statements()))
    no_dash = ingest(source, text.rstrip("-\n").encode())
    assert nothing_loaded(source, no_dash)
    assert "'-'" in no_dash.reject_reason
    no_closing = text[: text.rindex(":62F:")]
    assert nothing_loaded(source, ingest(source, no_closing.encode()))
    assert ingest(source, text.encode()).rows_accepted == 10


def test_mt940_in_a_swift_envelope_needs_its_blocks_closed():
    source = bank("mt940")
    text = (
        "{1:F01BANKDEFFXXXX0000000000}{2:O9401200240101BANKDEFFXXXX00000000002401011200N}{4:\n"
        f":20:ENV1\n:25:{IBAN}\n:28C:1/1\n:60F:C{DAY:%y%m%d}EUR1000,00\n"
        f":61:{DAY:%y%m%d}{DAY:%m%d}C10,00NTRFNONREF//B1\n:86:test\n:62F:C{DAY:%y%m%d}EUR1010,00\n"
        "-}{5:{CHK:123456789ABC}}\n"
    )
    assert nothing_loaded(source, ingest(source, text[: text.rindex("}") - 1].encode(), "mt940"))
    assert ingest(source, text.encode(), "mt940").rows_accepted == 1


def test_bai2_without_its_trailers_is_a_cut_and_a_record_out_of_place_is_malformed():
    source = bank("bai2")
    text = bai2_text([two_statements()[0]], as_of=DAY)
    for trailer, missing in (
        ("49,", "49 account trailer"),
        ("98,", "98 group trailer"),
        ("99,", "99 file trailer"),
    ):
        batch = ingest(source, text[: text.index(trailer)].encode(), "bai2")
        assert nothing_loaded(source, batch)
        assert missing in batch.reject_reason
    # A file ending right after a detail record: the bai2 package loops forever on it.
    after_detail = text[: text.index("\n", text.rindex("16,")) + 1]
    assert nothing_loaded(source, ingest(source, after_detail.encode(), "bai2"))
    shuffled = text.replace("\n98,", "\n16,195,100,Z,X,,/\n98,", 1)
    misplaced = ingest(source, shuffled.encode(), "bai2")
    assert (misplaced.status, misplaced.reject_code) == ("rejected", "malformed_file")
    assert "record '16' where 03 or 98 was expected" in misplaced.reject_reason
    assert ingest(source, text.encode(), "bai2").rows_accepted == 5


def test_json_cut_mid_array_is_a_cut_and_bad_json_is_malformed():
    source = SourceFactory(format="json", mapping={})
    data = (
        f'{{"records": [{{"external_id": "J1", "business_date": "{T}", "amount": "1.5", "currency": "EUR"}},'
    )
    cut = ingest(source, data.encode())
    assert nothing_loaded(source, cut)
    in_a_string = ingest(source, data[: data.index("J1") + 1].encode())
    assert nothing_loaded(source, in_a_string)
    bad = ingest(source, b'{"records": [}, 1]')
    assert (bad.status, bad.reject_code) == ("rejected", "malformed_file")


def test_the_same_statement_twice_in_one_file_is_a_duplicate_statement_not_a_crash():
    source = bank("camt053")
    statement = two_statements()[0]
    again = Statement("S1", IBAN, "EUR", statement.closing_balance(), DAY, DAY, statement.entries)
    batch = ingest(source, "".join(camt_chunks([statement, again])).encode())
    assert (batch.status, batch.reject_code) == ("rejected", "duplicate_statement")
    assert "appears twice in this file" in batch.reject_reason
    assert not Record.objects.filter(source=source).exists()


def test_accept_empty_is_a_source_setting_in_apply_config_and_the_admin(admin_client):
    source = SourceFactory()
    document = load_document(
        f"version: 1\ntenant: {source.tenant.slug}\nsources:\n"
        "  - {name: quiet, kind: trade, format: json, accept_empty: true}\n"
        "  - {name: loud, kind: trade, format: json}\n"
    )
    assert config_apply(document=document, actor=ACTOR)["sources"]["created"] == 2
    assert dict(DataSource.objects.filter(tenant=source.tenant).values_list("name", "accept_empty")) == {
        source.name: False, "quiet": True, "loud": False,
    }  # fmt: skip
    update = AuditEvent.objects.get(action="source.create", after__name="quiet")
    assert update.after["accept_empty"] is True
    bad = [{"name": "x", "kind": "trade", "accept_empty": "yes"}]
    with pytest.raises(ConfigError, match=r"accept_empty: must be true or false"):
        config_apply(document={**document, "sources": bad}, actor=ACTOR)

    form = {"tenant": source.tenant.pk, "name": "admin-made", "kind": "trade", "format": "json",
            "mapping": "{}", "connector": "{}", "is_active": "on", "accept_empty": "on"}  # fmt: skip
    response = admin_client.post("/admin/reconciliation/datasource/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert DataSource.objects.get(tenant=source.tenant, name="admin-made").accept_empty is True


def test_xxx_and_xts_are_not_currencies_unless_a_deployment_allows_a_test_code():
    source = SourceFactory()
    data = (TRADE_HEADER + f"T1,{T},A,I,1,XXX,\nT2,{T},A,I,2,XTS,\nT3,{T},A,I,3,EUR,\n").encode()
    batch = ingest(source, data)
    assert dict(Rejection.objects.filter(batch=batch).values_list("line_no", "reason")) == {
        2: "unknown_currency", 3: "unknown_currency",
    }  # fmt: skip
    assert "'XXX' is not an active ISO 4217 code" in Rejection.objects.get(batch=batch, line_no=2).message
    with override_settings(INGEST_EXTRA_CURRENCIES=["xts"]):
        other = SourceFactory()
        allowed = ingest(other, data)
    assert (allowed.rows_accepted, allowed.rows_rejected) == (2, 1)
    assert Record.objects.filter(source=other, currency="XTS").exists()


def test_a_bad_date_names_its_field_and_value():
    columns = {"external_id": "id", "business_date": "d", "amount": "a", "currency": "c", "value_date": "vd",
               "trade_date": "td"}  # fmt: skip
    source = SourceFactory(mapping={"columns": columns})
    data = f"id,d,a,c,vd,td\nT1,2026-13-45,1,EUR,{T},\nT2,{T},1,EUR,2026-02-30,x\n".encode()
    batch = ingest(source, data)
    messages = dict(Rejection.objects.filter(batch=batch).values_list("line_no", "message"))
    assert messages == {
        2: "business_date '2026-13-45' is not a date in the format %Y-%m-%d",
        3: "trade_date 'x' and value_date '2026-02-30' are not dates in the format %Y-%m-%d",
    }
    assert IngestionBatch.objects.get(pk=batch.pk).status == "rejected"
