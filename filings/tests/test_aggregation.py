"""CTR aggregation: per person, per business day, in and out apart, across branches, more than
USD 10,000; exempt persons excluded with the reason; foreign cash at the stated rate; lineage."""

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filings import services
from filings.models import CashTransaction, CtrExclusion, Filing, FilingLineage, FilingSubject
from filings.tests.factories import cash, configure, load_cash, member
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Role
from reconciliation.models import IngestionBatch

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 20)


@pytest.fixture
def preparer(configured):
    return Actor.for_user(member(configured, Role.ANALYST, username="preparer"))


def prepare(tenant, actor, first=DAY, last=None):
    return services.ctr_prepare(tenant=tenant, actor=actor, first=first, last=last, now=NOW)


def test_threshold_is_more_than_10000(configured, preparer):
    load_cash(
        configured,
        [
            cash("T1", "10000.00", party="C-1"),
            cash("T2", "10000.01", party="C-2"),
            cash("T3", "10000.00", party="C-3", direction="out"),
        ],
    )
    assert prepare(configured, preparer).filings == 1
    (filing,) = Filing.objects.filter(tenant=configured)
    assert (filing.subject_key, filing.total_cash_in, filing.total_cash_out) == (
        "C-2",
        Decimal("10000.01"),
        0,
    )
    assert (filing.due_date, filing.status) == (date(2026, 12, 5), "draft")


def test_in_and_out_aggregated_apart_across_branches_with_lineage(configured, preparer):
    load_cash(
        configured,
        [
            cash("T1", "6000", branch="MAIN"),
            cash("T2", "4000.50", branch="EAST"),  # in: 10,000.50 → report
            cash("T3", "9000", direction="out"),
            cash("T4", "900", direction="out"),  # out: 9,900 → not reported
            cash("T5", "20000", day="2026-11-21"),  # another day
        ],
    )
    assert prepare(configured, preparer).filings == 1
    filing = Filing.objects.get(tenant=configured, period_start=DAY)
    assert (filing.total_cash_in, filing.total_cash_out) == (Decimal("10000.50"), 0)
    lineage = FilingLineage.objects.filter(filing=filing)
    assert sorted(lineage.values_list("transaction__external_id", flat=True)) == ["T1", "T2"]
    subject = FilingSubject.objects.get(filing=filing)
    assert (subject.role, subject.cash_in, subject.transactions, subject.party_version.version) == (
        "50",
        Decimal("10000.50"),
        2,
        1,
    )


def test_on_behalf_of_counts_for_both_persons(configured, preparer):
    # C-3 (a courier) deposits for C-2: both persons have 12,000 in; C-3 is "conducting for another".
    load_cash(configured, [cash("T1", "12000", party="C-3", on_behalf_of="C-2")])
    assert prepare(configured, preparer).filings == 2
    roles = dict(FilingSubject.objects.filter(filing__tenant=configured).values_list("party_key", "role"))
    assert roles == {"C-3": "17", "C-2": "23"}


def test_foreign_cash_converted_at_the_stated_rate(configured, preparer):
    load_cash(configured, [cash("T1", "9100", currency="EUR")])  # 9,100 x 1.10 = 10,010 USD
    assert prepare(configured, preparer).filings == 1
    row = FilingLineage.objects.get(filing__tenant=configured)
    assert (row.amount_usd, row.usd_per_unit, row.rate_source) == (
        Decimal("10010"),
        Decimal("1.1"),
        "ECB euro reference rates (test table)",
    )


def test_missing_rate_stops_loudly_and_writes_nothing(configured, preparer):
    load_cash(configured, [cash("T1", "20000", currency="GBP")])
    with pytest.raises(ApplicationError) as exc:
        prepare(configured, preparer)
    assert exc.value.code == "fx_rate_missing"
    assert "GBP on 2026-11-20" in exc.value.message
    assert not Filing.objects.filter(tenant=configured).exists()


def test_exempt_person_excluded_with_reason(configured, preparer):
    configure(configured, exempt=[("C-2", "listed public company (31 CFR 1020.315(b)(4))")])
    load_cash(configured, [cash("T1", "50000", party="C-2"), cash("T2", "15000", party="C-1")])
    result = prepare(configured, preparer)
    assert (result.filings, result.excluded) == (1, 1)
    exclusion = CtrExclusion.objects.get(tenant=configured)
    assert exclusion.party_key == "C-2"
    assert "listed public company" in exclusion.reason


def test_preparing_twice_adds_nothing(configured, preparer):
    load_cash(configured, [cash("T1", "15000")])
    assert prepare(configured, preparer).filings == 1
    assert prepare(configured, preparer).filings == 0
    assert Filing.objects.filter(tenant=configured).count() == 1


def test_amended_transaction_uses_the_current_version(configured, preparer):
    load_cash(configured, [cash("T1", "15000")])
    load_cash(configured, [cash("T1", "5000", amend="yes")])
    assert CashTransaction.objects.filter(tenant=configured, external_id="T1").count() == 2
    assert prepare(configured, preparer).filings == 0


def test_analyst_of_another_tenant_may_not_prepare(configured):
    from filings.tests.factories import TenantFactory

    stranger = Actor.for_user(member(TenantFactory(slug="other"), Role.ANALYST, username="stranger"))
    with pytest.raises(ApplicationError) as exc:
        prepare(configured, stranger)
    assert exc.value.code == "permission_denied"


# --- property: the SQL equals an independent Python computation --------------------------------

PARTY_KEYS = ["C-1", "C-2", "C-3"]
amounts = st.one_of(
    st.sampled_from(
        [Decimal("10000.00"), Decimal("10000.01"), Decimal("9999.99"), Decimal("5000.00"), Decimal("0.01")]
    ),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("12000"), places=2),
)
txns = st.lists(
    st.fixed_dictionaries(
        {
            "amount": amounts,
            "party": st.sampled_from(PARTY_KEYS),
            "behalf": st.sampled_from(["", *PARTY_KEYS]),
            "direction": st.sampled_from(["in", "out"]),
            "day": st.sampled_from(["2026-11-20", "2026-11-21"]),
            "branch": st.sampled_from(["MAIN", "EAST"]),
            "currency": st.sampled_from(["USD", "USD", "EUR"]),
        }
    ),
    max_size=14,
)
RATES = {"USD": Decimal(1), "EUR": Decimal("1.1")}


def oracle(rows) -> dict:
    """Person-day-direction sums (a transaction counts once for each distinct person involved)."""
    sums = defaultdict(Decimal)
    for r in rows:
        for person in {r["party"], r["behalf"] or r["party"]}:
            sums[(person, r["day"], r["direction"])] += r["amount"] * RATES[r["currency"]]
    reported = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for (person, day, direction), total in sums.items():
        if total > Decimal("10000"):
            reported[(person, day)][0 if direction == "in" else 1] = total
    return {k: tuple(v) for k, v in reported.items()}


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=txns)
def test_sql_aggregation_matches_python_oracle(rows, configured, preparer):
    FilingSubject.objects.all().delete()
    FilingLineage.objects.all().delete()
    Filing.objects.all().delete()
    CashTransaction.objects.all().delete()
    IngestionBatch.objects.filter(source__kind="cash_transactions").update(
        status="duplicate"
    )  # allow the same list again
    configure(configured, rates=[("EUR", "2026-11-21", "1.1000")])
    records = [
        cash(
            f"P{i}",
            r["amount"],
            party=r["party"],
            on_behalf_of=r["behalf"],
            direction=r["direction"],
            day=r["day"],
            branch=r["branch"],
            currency=r["currency"],
        )
        for i, r in enumerate(rows)
    ]
    if records:
        load_cash(configured, records)
    prepare(configured, preparer, first=DAY, last=date(2026, 11, 21))
    got = {
        (f.subject_key, str(f.period_start)): (f.total_cash_in, f.total_cash_out)
        for f in Filing.objects.all()
    }
    assert got == oracle(rows)
    # Lineage: each filing's reported totals are exactly the sums of its lineage rows.
    for f in Filing.objects.all():
        lin = FilingLineage.objects.filter(filing=f)
        assert sum((x.amount_usd for x in lin if x.direction == "in"), Decimal(0)) == f.total_cash_in
        assert sum((x.amount_usd for x in lin if x.direction == "out"), Decimal(0)) == f.total_cash_out
