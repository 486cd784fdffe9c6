"""A file without a row id (a composite natural key) and quantities signed by a side column.

End to end through the ingest service on real PostgreSQL, with the sample files in tests/data/.
Their dates are placeholders ({asof}, {prev}, {d}) filled with today's dates when a test runs, so
the files stay inside the tenant window whatever the day.
"""

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db.models import Sum

from reconciliation.ingestion import services
from reconciliation.ingestion.tests.factories import ACTOR, POSITIONS_MAPPING, TRADES_MAPPING, SourceFactory
from reconciliation.models import Record, Rejection

DATA = Path(__file__).parent / "data"
TODAY = date.today()
PREVIOUS = TODAY - timedelta(days=1)


def sample(tmp_path, name: str) -> Path:
    text = (
        (DATA / name)
        .read_text()
        .format(asof=TODAY.strftime("%d/%m/%Y"), prev=PREVIOUS.strftime("%d/%m/%Y"), d=TODAY.isoformat())
    )
    path = tmp_path / name
    path.write_text(text)
    return path


def ingest(source, path):
    return services.batch_ingest_file(tenant=source.tenant, actor=ACTOR, source=source, path=path)


def rejections(batch) -> dict:
    return {r.line_no: (r.reason, r.message) for r in Rejection.objects.filter(batch=batch)}


def key(account, isin, day: date) -> str:
    return f"{account}|{isin}|{day.isoformat()}"


@pytest.mark.django_db(transaction=True)
def test_a_positions_file_without_ids_is_keyed_by_account_isin_and_as_of_date(tmp_path):
    source = SourceFactory(kind="position", mapping=POSITIONS_MAPPING)
    batch = ingest(source, sample(tmp_path, "positions_by_account_isin_asof.csv"))

    # Several rows per account load (a single-column key refused all but one per account); only
    # the true duplicate and the row missing a key part are rejected, each with a readable reason.
    assert (batch.status, batch.rows_total, batch.rows_accepted, batch.rows_rejected) == ("loaded", 11, 9, 2)
    assert rejections(batch) == {
        10: (
            "duplicate_key",
            f"key Account|ISIN|AsOf {key('CUST-001', 'US0378331005', TODAY)} on {TODAY}"
            " already appears at line 3 of this file",
        ),
        11: (
            "missing_field",
            "ISIN is empty: it is part of the key Account|ISIN|AsOf that identifies the row",
        ),
    }
    records = {r.external_id: r for r in Record.objects.filter(source=source, status="active")}
    assert len(records) == 9
    # The date part is the ISO date whatever the file's date format; trimmed values.
    same_isin = (
        records[key("CUST-002", "IE00B4L5Y983", TODAY)],
        records[key("CUST-002", "IE00B4L5Y983", PREVIOUS)],
    )
    assert [(r.quantity, r.business_date) for r in same_isin] == [
        (Decimal(800), TODAY),
        (Decimal(780), PREVIOUS),
    ]
    assert records[key("CUST-001", "US0378331005", TODAY)].line_no == 3  # the first occurrence stands
    assert Record.objects.filter(source=source, account="CUST-001").count() == 3

    # Amendments work on the composite key: a correction flag supersedes; an unflagged resend is refused.
    corrections = ingest(source, sample(tmp_path, "positions_corrections.csv"))
    assert (corrections.status, corrections.rows_accepted, corrections.rows_rejected) == ("loaded", 1, 1)
    fr_key = key("CUST-003", "FR0000120271", TODAY)
    assert rejections(corrections) == {
        3: (
            "duplicate_key",
            f"key Account|ISIN|AsOf {fr_key} on {TODAY} version 1 is already loaded"
            f" (batch {batch.pk}, version 1)",
        )
    }
    amended = Record.objects.filter(source=source, external_id=key("CUST-002", "IE00B4L5Y983", TODAY))
    assert sorted(amended.values_list("version", "status", "quantity")) == [
        (1, "superseded", Decimal(800)),
        (2, "active", Decimal(820)),
    ]

    # A JSON push to the same source makes the same key from its ISO dates (the file's are d/m/Y),
    # so it amends the CSV's row; a record that brings its own external_id is refused.
    pushed = services.batch_ingest_records(
        tenant=source.tenant, actor=ACTOR, source=source,
        records=[
            {"account": "CUST-001", "instrument": "IE00B4L5Y983", "business_date": TODAY.isoformat(),
             "quantity": "1450", "amount": "119340.00", "currency": "EUR", "amend": True},
            {"external_id": "X1", "account": "CUST-009", "instrument": "IE00B4L5Y983",
             "business_date": TODAY.isoformat(), "quantity": "1"},
        ],
    )  # fmt: skip
    assert (pushed.rows_accepted, pushed.rows_rejected) == (1, 1)
    ((reason, message),) = rejections(pushed).values()
    assert reason == "malformed_row"
    assert "derived from the key account|instrument|business_date" in message
    current = Record.objects.get(
        source=source, external_id=key("CUST-001", "IE00B4L5Y983", TODAY), status="active"
    )
    assert (current.version, current.quantity) == (2, Decimal(1450))


@pytest.mark.django_db(transaction=True)
def test_a_composite_key_longer_than_the_column_is_rejected_with_the_key(tmp_path):
    source = SourceFactory(kind="position", mapping=POSITIONS_MAPPING)
    long_account, long_isin = "A" * 60, "I" * 60  # each fits its column; the key does not
    path = tmp_path / "p.csv"
    path.write_text(
        "Account,ISIN,AsOf,Quantity,MarketValue,Ccy,Correction\n"
        f"{long_account},{long_isin},{TODAY:%d/%m/%Y},1,1.00,EUR,\n"
        f"a|b,c,{TODAY:%d/%m/%Y},1,1.00,EUR,\n"
        f"a,b|c,{TODAY:%d/%m/%Y},2,1.00,EUR,\n"
    )
    batch = ingest(source, path)
    ((reason, message),) = rejections(batch).values()
    assert reason == "field_too_long"
    assert message == (
        f"the key Account|ISIN|AsOf '{long_account}|{long_isin}|{TODAY}'"
        " is 132 characters long, more than 128"
    )
    # A "|" inside a value is escaped: (a|b, c) and (a, b|c) are two keys, not one duplicate.
    keys = set(Record.objects.filter(source=source).values_list("external_id", flat=True))
    assert keys == {f"a\\|b|c|{TODAY}", f"a|b\\|c|{TODAY}"}


@pytest.mark.django_db(transaction=True)
def test_trade_quantities_and_amounts_are_signed_by_the_side_column(tmp_path):
    source = SourceFactory(kind="trade", mapping=TRADES_MAPPING)
    batch = ingest(source, sample(tmp_path, "trades_with_side.csv"))
    assert (batch.status, batch.rows_total, batch.rows_accepted, batch.rows_rejected) == ("loaded", 9, 7, 2)
    assert rejections(batch) == {
        9: (
            "malformed_sign",
            "Side 'XFER' is not a side that signs the quantity (negative SELL, S; positive BUY, B)",
        ),
        10: ("malformed_sign", "Side is empty: it gives the sign of the quantity"),
    }
    records = Record.objects.filter(source=source, status="active")
    signed = dict(records.values_list("external_id", "quantity"))
    assert signed == {
        "T-1001": Decimal(1000), "T-1002": Decimal(-400), "T-1003": Decimal(250), "T-1004": Decimal(-100),
        "T-1005": Decimal(-50), "T-1006": Decimal(300), "T-1007": Decimal(-75),
    }  # fmt: skip
    net = dict(records.values("instrument").annotate(net=Sum("quantity")).values_list("instrument", "net"))
    assert net == {"IE00B4L5Y983": Decimal(900), "US0378331005": Decimal(100), "DE0007164600": Decimal(-75)}
    # The amount by its own rule on the same column: a purchase pays cash out.
    amounts = dict(records.values_list("external_id", "amount"))
    assert (amounts["T-1001"], amounts["T-1002"]) == (Decimal("-82300.00"), Decimal("33010.00"))
    assert Decimal(batch.computed_totals["by_currency"]["USD"]["quantity"]) == Decimal(100)


@pytest.mark.django_db(transaction=True)
def test_without_positive_values_every_other_side_is_positive_but_an_empty_one_is_refused(tmp_path):
    mapping = {**TRADES_MAPPING, "signs": {"quantity": {"sign_by": "Side", "negative_when": ["SELL"]}}}
    source = SourceFactory(kind="trade", mapping=mapping)
    path = tmp_path / "t.csv"
    path.write_text(
        "TradeRef,TradeDate,Account,ISIN,Side,Quantity,Consideration,Ccy\n"
        f"T1,{TODAY},A,I,SELL,10,1.00,EUR\nT2,{TODAY},A,I,SUBSCRIPTION,4,1.00,EUR\nT3,{TODAY},A,I,,4,1.00,EUR\n"
    )
    batch = ingest(source, path)
    assert dict(Record.objects.filter(source=source).values_list("external_id", "quantity")) == {
        "T1": Decimal(-10),
        "T2": Decimal(4),
    }
    assert rejections(batch) == {4: ("malformed_sign", "Side is empty: it gives the sign of the quantity")}


@pytest.mark.django_db(transaction=True)
def test_a_missing_side_column_rejects_the_file(tmp_path):
    source = SourceFactory(kind="trade", mapping=TRADES_MAPPING)
    path = tmp_path / "t.csv"
    path.write_text(
        f"TradeRef,TradeDate,Account,ISIN,Quantity,Consideration,Ccy\nT1,{TODAY},A,I,10,1.00,EUR\n"
    )
    batch = ingest(source, path)
    assert (batch.status, batch.reject_code) == ("rejected", "malformed_file")
    assert "columns not in the header: Side" in batch.reject_reason
