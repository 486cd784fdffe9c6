"""Property: a file cut at any byte is rejected whole, leaves nothing behind, and does not block the
complete file sent after it — for every format (docs/ingestion.md, "Truncated and empty files").

Each example cuts one format's sample at a random offset and asserts: the batch is rejected with a
reason (``truncated_file``; ``empty_file`` for a blank prefix), no records, no rejection rows, no
statements, consistent counts, an audit event; then the complete file loads on the same source.
Offsets where the prefix is itself a complete file are left out: trailing white space, and for the
formats without a trailer a cut exactly at a row (CSV) or statement (MT940) boundary — tested
separately in test_empty_and_cut_files.py.
"""

import csv
import io
import json
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfintech.audit.models import AuditEvent
from reconciliation.ingestion import services
from reconciliation.ingestion.samples import Entry, Statement, bai2_text, camt_chunks, mt940_chunks
from reconciliation.ingestion.tests.factories import ACTOR, SourceFactory
from reconciliation.models import Record, Rejection, StatementBalance

pytestmark = pytest.mark.django_db(transaction=True)

DAY = date.today() - timedelta(days=1)
CSV_MAPPING = {
    "columns": {"external_id": "id", "business_date": "date", "amount": "amount", "currency": "ccy",
                "description": "note"},
}  # fmt: skip


def _statements(accounts=("DE89370400440532013000", "DE89370400440532013000")) -> list[Statement]:
    """Two statements of five entries; the second continues the first when the account is the same."""

    def entries(prefix):
        return lambda: [
            Entry(D(f"{(-1) ** i * i * 10}.25"), DAY, ref=f"{prefix}{i}", end_to_end=f"E2E-{prefix}{i}",
                  counterparty="ACME Ltd", description=f"INV {prefix}{i}")
            for i in range(1, 6)
        ]  # fmt: skip

    first = Statement("S1", accounts[0], "EUR", D("1000.00"), DAY, DAY, entries("A"))
    second = Statement("S2", accounts[1], "EUR", first.closing_balance(), DAY, DAY, entries("B"), sequence=2)
    return [first, second]


def _csv() -> tuple[bytes, set[int], set[int]]:
    """A CSV with quoted fields (a comma, a line break inside quotes) and its row-boundary offsets."""
    out, boundaries = io.StringIO(), set()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "date", "amount", "ccy", "note"])
    rows = [
        ["T1", DAY.isoformat(), "100.50", "EUR", "plain"],
        ["T2", DAY.isoformat(), "-20", "EUR", "with, a comma"],
        ["T3", DAY.isoformat(), "7.25", "USD", "two\nlines"],
        ["T4", DAY.isoformat(), "1000000.00", "GBP", 'a "quote"'],
    ]
    header_end = len(out.getvalue().encode())
    for row in rows:
        writer.writerow(row)
        boundaries.add(len(out.getvalue().encode()))
    return out.getvalue().encode(), boundaries, {header_end}  # the header alone: an empty delivery


def _json() -> bytes:
    records = [
        {"external_id": f"J{i}", "business_date": DAY.isoformat(), "amount": f"{i}.10", "currency": "EUR",
         "attributes": {"desk": "fx"}}
        for i in range(1, 5)
    ]  # fmt: skip
    return json.dumps({"records": records}, indent=1).encode()


def _mt940() -> tuple[bytes, set[int], set[int]]:
    text = "".join(mt940_chunks(_statements()))
    end_of_first = text.index("-\n") + 1
    return text.encode(), {end_of_first, end_of_first + 1}, set()  # after "-", and after "-\n"


# format → (source format, the complete file, offsets where the prefix is a complete file, offsets
# where it is an empty delivery, rows the complete file loads)
SAMPLES = {
    "csv": ("csv", *_csv(), 4),
    "json": ("json", _json(), set(), set(), 4),
    "camt053-02": ("camt053", "".join(camt_chunks(_statements(), version="02")).encode(), set(), set(), 10),
    "camt053-08": ("camt053", "".join(camt_chunks(_statements(), version="08")).encode(), set(), set(), 10),
    "camt054-02": ("camt054", "".join(camt_chunks(_statements(), message="054")).encode(), set(), set(), 10),
    "camt054-08": (
        "camt054",
        "".join(camt_chunks(_statements(), message="054", version="08")).encode(),
        set(),
        set(),
        10,
    ),
    "mt940": ("mt940", *_mt940(), 10),
    "bai2": (
        "bai2",
        bai2_text(_statements(("DE89370400440532013000", "GB29NWBK60161331926819")), as_of=DAY).encode(),
        set(),
        set(),
        10,
    ),
}


def ingest(source, data: bytes):
    return services.batch_ingest_file(
        tenant=source.tenant, actor=ACTOR, source=source, fileobj=io.BytesIO(data), file_name="f"
    )


def expected_code(data: bytes, cut: int, empty_at: set[int]) -> str:
    return "truncated_file" if data[:cut].strip() and cut not in empty_at else "empty_file"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_file_cut_anywhere_is_rejected_whole_and_the_complete_file_loads_after_it(name):
    fmt, data, boundaries, empty_at, rows = SAMPLES[name]
    meaningful = len(data.rstrip())  # a cut that keeps every non-blank byte leaves a complete file

    @settings(max_examples=12, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
    @given(cut=st.integers(min_value=0, max_value=meaningful - 1).filter(lambda c: c not in boundaries))
    def cut_then_complete(cut):
        source = SourceFactory(kind="statement" if fmt not in ("csv", "json") else "trade", format=fmt,
                               mapping=CSV_MAPPING if fmt == "csv" else {})  # fmt: skip
        batch = ingest(source, data[:cut])
        assert batch.status == "rejected", (cut, batch.reject_code, batch.rows_accepted)
        assert batch.reject_code == expected_code(data, cut, empty_at), (cut, batch.reject_reason)
        assert batch.reject_reason
        assert (batch.rows_total, batch.rows_accepted, batch.rows_rejected) == (0, 0, 0)
        assert not Record.objects.filter(source=source).exists()
        assert not Rejection.objects.filter(batch=batch).exists()
        assert not StatementBalance.objects.filter(source=source).exists()
        assert AuditEvent.objects.filter(object_id=str(batch.pk), action="batch.rejected").exists()

        complete = ingest(source, data)
        assert (complete.status, complete.reject_code) == ("loaded", ""), complete.reject_reason
        assert complete.rows_accepted == Record.objects.filter(source=source).count() == rows

    cut_then_complete()
