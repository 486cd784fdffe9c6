import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from prometheus_client import REGISTRY

from jfintech.audit.models import AuditEvent
from reconciliation.ingestion import services
from reconciliation.ingestion.tests.factories import ACTOR, TRADE_HEADER, SourceFactory
from reconciliation.models import IngestionBatch, Record, Rejection

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = date.today()
D = TODAY.isoformat()


def write(tmp_path, text, name="trades.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def ingest(source, path, **kw):
    return services.batch_ingest_file(tenant=source.tenant, actor=ACTOR, source=source, path=path, **kw)


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


def reasons(batch):
    return dict(Rejection.objects.filter(batch=batch).values_list("line_no", "reason"))


def active(source):
    return Record.objects.filter(source=source, status="active")


def test_a_clean_csv_loads_every_row_with_totals(tmp_path):
    source = SourceFactory()
    path = write(tmp_path, TRADE_HEADER + f"T1,{D},ACC1,XS1,100.50,EUR,\nT2,{D},ACC1,XS2,-20,eur,1\n")
    batch = ingest(source, path)
    assert (batch.status, batch.rows_total, batch.rows_accepted, batch.rows_rejected) == ("loaded", 2, 2, 0)
    assert Decimal(batch.computed_totals["by_currency"]["EUR"]["amount"]) == Decimal("80.5")
    records = {r.external_id: r for r in active(source)}
    assert records["T1"].amount == Decimal("100.5")
    assert records["T1"].business_date == TODAY
    assert records["T2"].currency == "EUR"
    assert records["T1"].line_no == 2
    assert records["T1"].kind == "trade"
    actions = list(AuditEvent.objects.filter(object_id=str(batch.pk)).values_list("action", flat=True))
    assert actions == ["batch.receive", "batch.loaded"]


def test_each_bad_row_is_rejected_with_a_precise_reason_and_nothing_is_skipped(tmp_path):
    source = SourceFactory()
    far = (TODAY - timedelta(days=365 * 5)).isoformat()
    rows = [
        f"OK1,{D},A,I,1.00,EUR,",  # 2
        f"W1,{far},A,I,1.00,EUR,",  # 3 out of window
        f"M1,{D},A,I,1.0.0,EUR,",  # 4 malformed amount
        f"M2,{D},A,I,1.1234567,EUR,",  # 5 too many decimals: never rounded
        f"C1,{D},A,I,1.00,XYZ,",  # 6 unknown currency
        "D1,2024-02-30,A,I,1.00,EUR,",  # 7 impossible date
        f",{D},A,I,1.00,EUR,",  # 8 no external id
        f"OK1,{D},A,I,2.00,EUR,",  # 9 same key earlier in the file
        "X1,too,few",  # 10 wrong column count
        f"V1,{D},A,I,1.00,EUR,zero",  # 11 bad version
        f"N1,{D},A,I,,EUR,",  # 12 no amount
    ]
    before = metric("ingest_rejections_total", kind="trade", reason="malformed_amount")
    accepted_before = metric("ingest_rows_total", kind="trade", outcome="accepted")
    batch = ingest(source, write(tmp_path, TRADE_HEADER + "\n".join(rows) + "\n"))
    assert (batch.status, batch.rows_total, batch.rows_accepted, batch.rows_rejected) == ("loaded", 11, 1, 10)
    assert metric("ingest_rejections_total", kind="trade", reason="malformed_amount") == before + 2
    assert metric("ingest_rows_total", kind="trade", outcome="accepted") == accepted_before + 1
    assert reasons(batch) == {
        3: "out_of_window",
        4: "malformed_amount",
        5: "malformed_amount",
        6: "unknown_currency",
        7: "malformed_date",
        8: "missing_field",
        9: "duplicate_key",
        10: "malformed_row",
        11: "malformed_version",
        12: "missing_field",
    }
    rejection = Rejection.objects.get(batch=batch, line_no=10)
    assert rejection.raw == "X1,too,few"
    assert "expected 7 columns, found 3" in rejection.message
    assert "line 2" in Rejection.objects.get(batch=batch, line_no=9).message
    assert batch.computed_totals["rejections_by_reason"]["malformed_amount"] == 2


def test_the_same_file_twice_is_a_duplicate_batch_and_nothing_doubles(tmp_path):
    source = SourceFactory()
    path = write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,10,EUR,\n")
    first, second = ingest(source, path), ingest(source, path)
    assert (first.status, second.status, second.duplicate_of_id) == ("loaded", "duplicate", first.pk)
    assert second.rows_total == second.rows_accepted == 0
    assert active(source).count() == 1


def test_the_same_upload_concurrently_loads_once(tmp_path):
    source = SourceFactory()
    path = write(tmp_path, TRADE_HEADER + "".join(f"T{i},{D},A,I,{i},EUR,\n" for i in range(500)))
    results, barrier = [], threading.Barrier(3)

    def upload():
        barrier.wait()
        try:
            results.append(ingest(source, path).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["duplicate", "duplicate", "loaded"]
    assert active(source).count() == 500
    assert IngestionBatch.objects.filter(source=source, status="loaded").count() == 1


def test_a_key_already_loaded_is_a_duplicate_key_and_a_higher_version_supersedes(tmp_path):
    source = SourceFactory()
    ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,10,EUR,\nT2,{D},A,I,5,EUR,\n", "a.csv"))
    batch = ingest(
        source, write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,11,EUR,\nT2,{D},A,I,6,EUR,2\n", "b.csv")
    )
    assert (batch.rows_accepted, batch.rows_rejected) == (1, 1)
    assert reasons(batch) == {2: "duplicate_key"}
    t2 = Record.objects.filter(source=source, external_id="T2").order_by("version")
    assert [(r.version, r.status, r.amount) for r in t2] == [(1, "superseded", 5), (2, "active", 6)]
    assert batch.computed_totals["superseded"] == 1


def test_reversal_keeps_history_reactivates_the_previous_version_and_allows_a_reload(tmp_path):
    source = SourceFactory()
    original = ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,10,EUR,\n", "a.csv"))
    amended = ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,12,EUR,2\n", "b.csv"))
    services.batch_reverse(tenant=source.tenant, actor=ACTOR, batch=amended, reason="wrong amendment")
    rows = Record.objects.filter(source=source).order_by("version")
    assert [(r.version, r.status) for r in rows] == [(1, "active"), (2, "reversed")]
    services.batch_reverse(tenant=source.tenant, actor=ACTOR, batch=original, reason="wrong file")
    assert not active(source).exists()
    reload = ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{D},A,I,10,EUR,\n", "a.csv"))
    assert reload.status == "loaded"
    assert reload.rows_accepted == 1
    assert Record.objects.filter(source=source).count() == 3  # history kept
    assert AuditEvent.objects.filter(action="batch.reverse", object_id=str(original.pk)).exists()
    with pytest.raises(Exception, match="Only a loaded batch"):
        services.batch_reverse(tenant=source.tenant, actor=ACTOR, batch=original, reason="again")


def test_amendment_flag_without_version_takes_the_next_version(tmp_path):
    source = SourceFactory(
        mapping={
            "columns": {"external_id": "id", "business_date": "d", "amount": "a", "amend": "amend"},
            "default_currency": "USD",
        }
    )
    ingest(source, write(tmp_path, f"id,d,a,amend\nT1,{D},1,\n", "a.csv"))
    ingest(source, write(tmp_path, f"id,d,a,amend\nT1,{D},2,Y\n", "b.csv"))
    ingest(source, write(tmp_path, f"id,d,a,amend\nT1,{D},3,true\n", "c.csv"))
    assert [(r.version, r.status) for r in Record.objects.filter(source=source).order_by("version")] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "active"),
    ]


def test_mapping_date_format_decimal_comma_debit_credit_and_default_currency(tmp_path):
    source = SourceFactory(
        kind="ledger",
        mapping={
            "columns": {"external_id": "Ref", "business_date": "Posted", "amount": "Amt", "account": "GL"},
            "delimiter": ";",
            "date_format": "%d/%m/%Y",
            "decimal_separator": ",",
            "thousands_separator": ".",
            "sign": {"column": "DC", "negative": ["D"], "positive": ["C"]},
            "default_currency": "EUR",
            "attributes": ["Desk"],
        },
    )
    day = TODAY.strftime("%d/%m/%Y")
    text = (
        f"Ref;Posted;Amt;GL;DC;Desk\nL1;{day};1.234,50;100;D;fx\n"
        f"L2;{day};10,00;100;C;mm\nL3;{day};1,00;100;X;mm\n"
    )
    batch = ingest(source, write(tmp_path, text))
    assert reasons(batch) == {4: "malformed_sign"}
    got = {r.external_id: (r.amount, r.currency, r.attributes) for r in active(source)}
    assert got == {
        "L1": (Decimal("-1234.5"), "EUR", {"Desk": "fx"}),
        "L2": (Decimal(10), "EUR", {"Desk": "mm"}),
    }


def test_pushed_json_records_load_and_the_same_push_twice_is_a_duplicate():
    source = SourceFactory(format="json")
    records = [
        {
            "external_id": "J1",
            "business_date": D,
            "amount": "10.25",
            "currency": "GBP",
            "attributes": {"x": 1},
        },
        {"external_id": "J2", "business_date": D, "amount": 3, "currency": "GBP"},
        {"external_id": "J3", "business_date": D, "amount": "1", "currency": "GBP", "colour": "red"},
        "not an object",
    ]
    batch = services.batch_ingest_records(tenant=source.tenant, actor=ACTOR, source=source, records=records)
    assert (batch.rows_total, batch.rows_accepted, batch.rows_rejected) == (4, 2, 2)
    assert reasons(batch) == {3: "malformed_row", 4: "malformed_row"}
    again = services.batch_ingest_records(tenant=source.tenant, actor=ACTOR, source=source, records=records)
    assert again.status == "duplicate"


def test_a_file_missing_a_mapped_column_is_rejected_whole(tmp_path):
    source = SourceFactory()
    batch = ingest(source, write(tmp_path, "trade_id,trade_date\nT1,2024-01-01\n"))
    assert (batch.status, batch.reject_code, batch.rows_total) == ("rejected", "malformed_file", 0)
    assert "isin" in batch.reject_reason


def test_inside_a_transaction_missing_partitions_are_made_on_a_separate_connection(tmp_path):
    source = SourceFactory()
    source.tenant.window_months_ahead = 60
    source.tenant.save()
    future = date(TODAY.year + 4, 7, 15)
    with transaction.atomic():
        batch = ingest(source, write(tmp_path, TRADE_HEADER + f"F1,{future},A,I,1,EUR,\n"))
    assert batch.status == "loaded"
    assert active(source).get().business_date == future


def test_csv_with_bom_crlf_quoted_newlines_and_latin1(tmp_path):
    source = SourceFactory(
        mapping={
            "columns": {"external_id": "id", "business_date": "d", "amount": "a", "description": "note"},
            "default_currency": "EUR",
        }
    )
    path = tmp_path / "w.csv"
    path.write_bytes(f'\ufeffid,d,a,note\r\nQ1,{D},1.00,"two\r\nlines"\r\nQ2,{D},2.00,plain\r\n'.encode())
    batch = ingest(source, path)
    assert (batch.rows_total, batch.rows_accepted) == (2, 2)
    q2 = active(source).get(external_id="Q2")
    assert q2.line_no == 4  # physical line: the quoted newline counts
    assert active(source).get(external_id="Q1").description == "two\r\nlines"
    latin = SourceFactory(mapping={**source.mapping, "encoding": "latin-1"})
    path.write_bytes(f"id,d,a,note\nL1,{D},1.00,café\n".encode("latin-1"))
    batch = ingest(latin, path)
    assert active(latin).get().description == "café"
    bad = tmp_path / "bad.csv"
    bad.write_bytes(f"id,d,a,note\nL1,{D},1.00,caf\xe9\n".encode("latin-1"))
    assert ingest(source, bad).reject_code == "malformed_file"  # not UTF-8: the file is refused
