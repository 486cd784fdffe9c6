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
from filings.selectors import subject_role
from filings.tests.factories import PARTIES, cash, configure, load_cash, member
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


def subjects(tenant) -> set[tuple]:
    return set(
        FilingSubject.objects.filter(filing__tenant=tenant).values_list(
            "filing__subject_key", "party_key", "role", "cash_in", "cash_out", "transactions"
        )
    )


def test_courier_and_customer_are_one_ctr(configured, preparer):
    # C-3 (a courier) deposits 12,000 for C-2: both persons are over the threshold with the same
    # transaction, so one CTR lists both (C-3 conducting for another, C-2 on whose behalf).
    load_cash(configured, [cash("T1", "12000", party="C-3", on_behalf_of="C-2")])
    assert prepare(configured, preparer).filings == 1
    assert subjects(configured) == {
        ("C-2", "C-2", "23", Decimal("12000"), 0, 1),
        ("C-2", "C-3", "17", Decimal("12000"), 0, 1),
    }
    assert FilingLineage.objects.filter(filing__tenant=configured).count() == 1


def test_one_part_per_role_faq_16(configured, preparer):
    # FinCEN CTR FAQ 16: C-1 deposits 5,000 to their own account and 7,000 for a business (C-2):
    # C-1 is over the threshold (12,000 by them); C-1 is listed twice (50 with 5,000, 17 with
    # 7,000) and C-2 once (23 with 7,000), though C-2 alone is under the threshold.
    load_cash(
        configured,
        [
            cash("T1", "5000", party="C-1"),
            cash("T2", "7000", party="C-1", on_behalf_of="C-2", account="ACC-2"),
        ],
    )
    assert prepare(configured, preparer).filings == 1
    filing = Filing.objects.get(tenant=configured)
    assert (filing.subject_key, filing.total_cash_in) == ("C-1", Decimal("12000"))
    assert subjects(configured) == {
        ("C-1", "C-1", "50", Decimal("5000"), 0, 1),
        ("C-1", "C-1", "17", Decimal("7000"), 0, 1),
        ("C-1", "C-2", "23", Decimal("7000"), 0, 1),
    }


def test_customers_of_one_courier_are_on_the_couriers_ctr(configured, preparer):
    # C-3 deposits 12,000 for C-1 and 12,000 for C-2: all three are over the threshold; each
    # customer's transactions are all on the courier's CTR, so one CTR of 24,000 lists all three.
    load_cash(
        configured,
        [
            cash("T1", "12000", party="C-3", on_behalf_of="C-1"),
            cash("T2", "12000", party="C-3", on_behalf_of="C-2"),
        ],
    )
    assert prepare(configured, preparer).filings == 1
    filing = Filing.objects.get(tenant=configured)
    assert (filing.subject_key, filing.total_cash_in) == ("C-3", Decimal("24000"))
    assert subjects(configured) == {
        ("C-3", "C-1", "23", Decimal("12000"), 0, 1),
        ("C-3", "C-2", "23", Decimal("12000"), 0, 1),
        ("C-3", "C-3", "17", Decimal("24000"), 0, 2),
    }
    assert prepare(configured, preparer).filings == 0  # idempotent


def test_overlapping_aggregations_each_have_their_ctr_and_bystanders_bring_only_the_shared_cash(
    configured, preparer
):
    # C-3 deposits 12,000 for C-1 and 12,000 for C-2; C-1 also receives 300 from C-4 (under the
    # threshold, who also deposits 200 of their own). C-1's aggregation (12,300) is not inside the
    # courier's (24,000): two CTRs, T1 on both; C-2's is inside the courier's. C-4 is listed on
    # C-1's CTR with the 300 only.
    load_cash(
        configured,
        [
            cash("T1", "12000", party="C-3", on_behalf_of="C-1"),
            cash("T2", "12000", party="C-3", on_behalf_of="C-2"),
            cash("T3", "300", party="C-4", on_behalf_of="C-1"),
            cash("T4", "200", party="C-4"),
        ],
    )
    assert prepare(configured, preparer).filings == 2
    lineage = {
        key: sorted(
            FilingLineage.objects.filter(filing__subject_key=key).values_list(
                "transaction__external_id", flat=True
            )
        )
        for key in ("C-1", "C-3")
    }
    assert lineage == {"C-1": ["T1", "T3"], "C-3": ["T1", "T2"]}
    assert subjects(configured) == {
        ("C-1", "C-1", "23", Decimal("12300"), 0, 2),
        ("C-1", "C-3", "17", Decimal("12000"), 0, 1),
        ("C-1", "C-4", "17", Decimal("300"), 0, 1),
        ("C-3", "C-1", "23", Decimal("12000"), 0, 1),
        ("C-3", "C-2", "23", Decimal("12000"), 0, 1),
        ("C-3", "C-3", "17", Decimal("24000"), 0, 2),
    }


def test_cash_on_behalf_of_an_exempt_person_is_not_reported(configured, preparer):
    # C-2 is exempt: the courier's 15,000 for C-2 is the exempt customer's cash; both person-days
    # are recorded as excluded with the reason, nothing is filed.
    configure(configured, exempt=[("C-2", "listed public company (31 CFR 1020.315(b)(4))")])
    load_cash(configured, [cash("T1", "15000", party="C-3", on_behalf_of="C-2")])
    result = prepare(configured, preparer)
    assert (result.filings, result.excluded) == (0, 2)
    reasons = dict(CtrExclusion.objects.filter(tenant=configured).values_list("party_key", "reason"))
    assert reasons["C-2"].startswith("exempt person: listed public company")
    assert "exempt person" in reasons["C-3"]


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

PARTY_KEYS = ["C-1", "C-2", "C-3", "C-4"]
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
    max_size=16,
)
RATES = {"USD": Decimal(1), "EUR": Decimal("1.1")}
ENTITIES = {p["party_key"] for p in PARTIES if p.get("is_entity")}  # C-2, C-4


def oracle(rows) -> tuple[dict, set]:
    """The rule in plain Python: person-day-direction sums (a transaction counts once for each
    distinct person involved); a CTR per person-day over the threshold unless all its reported
    transactions are another's (then on the biggest such, first by key); subjects per person and
    role."""
    for i, r in enumerate(rows):
        r["id"], r["usd"], r["beneficiary"] = i, r["amount"] * RATES[r["currency"]], r["behalf"] or r["party"]
    sums = defaultdict(Decimal)
    for r in rows:
        for person in {r["party"], r["beneficiary"]}:
            sums[(person, r["day"], r["direction"])] += r["usd"]
    over = {k for k, total in sums.items() if total > Decimal("10000")}
    reported = defaultdict(set)  # (person, day) -> transaction ids
    for r in rows:
        for person in {r["party"], r["beneficiary"]}:
            if (person, r["day"], r["direction"]) in over:
                reported[(person, r["day"])].add(r["id"])
    group = {}
    for p, mine in reported.items():  # the biggest other trigger holding all of p's, else p itself
        holders = [
            q
            for q, theirs in reported.items()
            if q != p and q[1] == p[1] and mine <= theirs and (len(theirs) > len(mine) or q[0] < p[0])
        ]
        group[p] = min(holders, key=lambda q: (-len(reported[q]), q[0]))[0] if holders else p[0]
    txns = defaultdict(set)
    for trigger, ids in reported.items():
        txns[(group[trigger], trigger[1])] |= ids
    filings, parts = {}, defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for key, ids in txns.items():
        chosen = [r for r in rows if r["id"] in ids]
        filings[key] = tuple(
            sum((r["usd"] for r in chosen if r["direction"] == d), Decimal(0)) for d in ("in", "out")
        )
        for r in chosen:
            if r["party"] != r["beneficiary"]:
                roles = {(r["party"], "17"), (r["beneficiary"], "23")}
            else:  # an entity cannot conduct: its own cash is cash on its behalf
                roles = {(r["party"], "23" if r["party"] in ENTITIES else "50")}
            for person, role in roles:
                part = parts[(*key, person, role)]
                part[0 if r["direction"] == "in" else 1] += r["usd"]
                part[2] += 1
    return filings, {(*k, *v) for k, v in parts.items()}


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
    expected_filings, expected_subjects = oracle(rows)
    assert got == expected_filings
    assert {
        (
            s.filing.subject_key,
            str(s.filing.period_start),
            s.party_key,
            s.role,
            s.cash_in,
            s.cash_out,
            s.transactions,
        )
        for s in FilingSubject.objects.select_related("filing")
    } == expected_subjects
    # Lineage: each filing's reported totals are exactly the sums of its lineage rows, and each
    # subject's amounts the sums of the lineage rows of the transactions it has that role in.
    for f in Filing.objects.all():
        lin = list(FilingLineage.objects.filter(filing=f).select_related("transaction"))
        assert sum((x.amount_usd for x in lin if x.direction == "in"), Decimal(0)) == f.total_cash_in
        assert sum((x.amount_usd for x in lin if x.direction == "out"), Decimal(0)) == f.total_cash_out
        for s in FilingSubject.objects.filter(filing=f):
            mine = [
                x
                for x in lin
                if subject_role(
                    s.party_key,
                    x.transaction.conducted_by,
                    x.transaction.on_behalf_of,
                    entity=s.party_key in ENTITIES,
                )
                == s.role
            ]
            assert (len(mine), s.cash_in, s.cash_out) == (
                s.transactions,
                sum((x.amount_usd for x in mine if x.direction == "in"), Decimal(0)),
                sum((x.amount_usd for x in mine if x.direction == "out"), Decimal(0)),
            )
