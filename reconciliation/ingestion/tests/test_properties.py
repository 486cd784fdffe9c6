"""Property: for any generated file, every row is accounted for and the accepted money is exact.

accepted + rejected = total; the accepted rows are exactly those an independent oracle accepts;
and the sum of the loaded amounts equals the sum of the accepted input rows' amounts.
"""

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation.ingestion import services
from reconciliation.ingestion.currencies import iso_currency_codes
from reconciliation.ingestion.tests.factories import ACTOR, SourceFactory
from reconciliation.models import Record, Rejection

TODAY = date.today()
ISO = set(iso_currency_codes())
IN_WINDOW = st.integers(min_value=-300, max_value=60).map(lambda d: (TODAY + timedelta(days=d)).isoformat())
BAD_DATES = st.sampled_from(
    ["2023-02-30", "yesterday", "", "2024-13-01", (TODAY - timedelta(days=3000)).isoformat()]
)
AMOUNTS = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=2, allow_nan=False).map(str)
BAD_AMOUNTS = st.sampled_from(["", "1,5", "abc", "1e5", "0.1234567", "--1", "1.2.3"])

row = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["", "A", "B", "C", "D", "E", "F", "G"])
        | st.text("XYZ0123", min_size=1, max_size=4),
        "date": IN_WINDOW | BAD_DATES,
        "amount": AMOUNTS | BAD_AMOUNTS,
        "ccy": st.sampled_from(["EUR", "usd", "GBP", "XXQ", "", "EURO"]),
    }
)


def oracle_accepts(rows: list[dict], window: tuple[date, date]) -> set[int]:
    """Line numbers an independent Python reading accepts (the first occurrence of a key wins)."""
    accepted, seen = set(), set()
    for line, r in enumerate(rows, start=2):
        key = r["id"].strip()
        try:
            day = date.fromisoformat(r["date"].strip())
        except ValueError:
            continue
        amount_ok = re.fullmatch(r"[+-]?[0-9]{1,18}(\.[0-9]{1,6})?", r["amount"].strip())
        valid = key and amount_ok and window[0] <= day <= window[1] and r["ccy"].strip().upper() in ISO
        if valid and (key, day) not in seen:
            seen.add((key, day))
            accepted.add(line)
    return accepted


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(row, max_size=25))
def test_every_row_is_accounted_for_and_the_accepted_sum_is_exact(rows):
    source = SourceFactory(
        mapping={
            "columns": {"external_id": "id", "business_date": "date", "amount": "amount", "currency": "ccy"}
        }
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "date", "amount", "ccy"])
    writer.writerows([r["id"], r["date"], r["amount"], r["ccy"]] for r in rows)
    batch = services.batch_ingest_file(
        tenant=source.tenant,
        actor=ACTOR,
        source=source,
        fileobj=io.BytesIO(out.getvalue().encode()),
        file_name="p.csv",
    )
    assert batch.rows_total == len(rows)
    assert batch.rows_accepted + batch.rows_rejected == batch.rows_total
    assert Rejection.objects.filter(batch=batch).count() == batch.rows_rejected
    loaded = dict(Record.objects.filter(batch=batch).values_list("line_no", "amount"))
    assert set(loaded) == oracle_accepts(rows, services.tenant_window(source.tenant))
    expected = sum((Decimal(rows[line - 2]["amount"]) for line in loaded), Decimal(0))
    total = Record.objects.filter(batch=batch).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    assert total == expected
