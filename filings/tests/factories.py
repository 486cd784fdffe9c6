"""Factory data for the filings tests: a configured tenant, parties and cash transactions pushed
through ingestion to sources of kind parties and cash_transactions (the path production data takes)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from filings.config import config_upsert
from filings.models import Branch, ExemptPerson, FilingInstitution, FxRate
from jfintech.audit import Actor
from jfintech.tests.factories import TenantFactory, UserFactory, member
from reconciliation.ingestion.services import batch_ingest_records, source_upsert

__all__ = ["INSTITUTION", "TenantFactory", "UserFactory", "configure", "load_cash", "load_parties", "member"]

LOADER = Actor.for_system("filings-tests")

INSTITUTION = {
    "name": "First Demo Bank",
    "ein": "123456789",
    "rssd": "1234567",
    "regulator_code": "4",
    "organization_type": "2",
    "street": "1 Main Street",
    "city": "Springfield",
    "state": "IL",
    "zip_code": "62701",
    "country": "US",
    "contact_office": "BSA Compliance Office",
    "contact_phone": "2175550100",
    "transmitter_name": "First Demo Bank",
    "transmitter_tin": "123456789",
    "transmitter_tcc": "PTEST123",
    "transmitter_phone": "2175550100",
    "transmitter_contact": "Jane Compliance",
    "break_threshold": Decimal("100.00"),
    "fx_rate_source": "ECB euro reference rates (test table)",
}

BRANCHES = [
    {
        "code": "MAIN",
        "name": "Main Street branch",
        "ein": "123456789",
        "rssd": "1234567",
        "street": "1 Main Street",
        "city": "Springfield",
        "state": "IL",
        "zip_code": "62701",
        "country": "US",
    },
    {
        "code": "EAST",
        "name": "East Side branch",
        "ein": "123456789",
        "rssd": "",
        "street": "90 East Avenue",
        "city": "Springfield",
        "state": "IL",
        "zip_code": "62702",
        "country": "US",
    },
]

PARTIES = [
    {
        "party_key": "C-1",
        "last_name": "Doe",
        "first_name": "John",
        "middle_name": "Q",
        "tin": "111223333",
        "tin_type": "1",
        "birth_date": "1975-01-20",
        "street": "2 Elm Street",
        "city": "Springfield",
        "state": "IL",
        "zip_code": "62704",
        "country": "US",
        "id_type": "5",
        "id_number": "D12345678",
        "id_issuer_state": "IL",
        "occupation": "Carpenter",
    },
    {
        "party_key": "C-2",
        "is_entity": "yes",
        "last_name": "Acme Hardware LLC",
        "tin": "987654321",
        "tin_type": "2",
        "street": "5 Market Street",
        "city": "Springfield",
        "state": "IL",
        "zip_code": "62701",
        "country": "US",
        "occupation": "Hardware retail",
    },
    {
        "party_key": "C-3",
        "last_name": "Roe",
        "first_name": "Mary",
        "tin": "222334444",
        "tin_type": "1",
        "birth_date": "1980-06-15",
        "street": "7 Oak Road",
        "city": "Chicago",
        "state": "IL",
        "zip_code": "60601",
        "country": "US",
        "occupation": "Courier",
    },
    {
        "party_key": "C-4",
        "is_entity": "yes",
        "last_name": "Main Street Diner Inc",
        "tin": "876543219",
        "tin_type": "2",
        "street": "12 Main Street",
        "city": "Springfield",
        "state": "IL",
        "zip_code": "62701",
        "country": "US",
        "occupation": "Restaurant",
    },
]


def configure(tenant, *, exempt=(), rates=()) -> FilingInstitution:
    inst, _ = config_upsert(
        tenant=tenant,
        actor=LOADER,
        model=FilingInstitution,
        key={},
        values=INSTITUTION,
        check_permission=False,
    )
    for b in BRANCHES:
        config_upsert(
            tenant=tenant,
            actor=LOADER,
            model=Branch,
            key={"code": b["code"]},
            values={k: v for k, v in b.items() if k != "code"},
            check_permission=False,
        )
    for key, reason in exempt:
        config_upsert(
            tenant=tenant,
            actor=LOADER,
            model=ExemptPerson,
            key={"party_key": key, "valid_from": date(2020, 1, 1)},
            values={"reason": reason},
            check_permission=False,
        )
    for currency, day, rate in rates:
        config_upsert(
            tenant=tenant,
            actor=LOADER,
            model=FxRate,
            key={"currency": currency, "business_date": day},
            values={"usd_per_unit": Decimal(rate), "source": INSTITUTION["fx_rate_source"]},
            check_permission=False,
        )
    return inst


SOURCE_NAMES = {"parties": "filings-parties", "cash_transactions": "filings-cash-transactions"}


def data_source(tenant, kind: str, *, format: str = "json", mapping: dict | None = None):
    """The tenant's ingestion source of ``kind`` (parties or cash_transactions), created once."""
    source, _ = source_upsert(
        tenant=tenant, actor=LOADER, name=SOURCE_NAMES[kind], kind=kind, format=format, mapping=mapping
    )
    return source


def load_parties(tenant, parties=PARTIES):
    return batch_ingest_records(
        tenant=tenant, actor=LOADER, source=data_source(tenant, "parties"), records=list(parties)
    )


def cash(
    external_id,
    amount,
    *,
    party="C-1",
    day="2026-11-20",
    direction="in",
    branch="MAIN",
    currency="USD",
    account="ACC-1",
    on_behalf_of="",
    **extra,
) -> dict:
    return {
        "external_id": external_id,
        "business_date": day,
        "branch_code": branch,
        "direction": direction,
        "amount": str(amount),
        "currency": currency,
        "account": account,
        "conducted_by": party,
        "on_behalf_of": on_behalf_of,
        **extra,
    }


def load_cash(tenant, rows):
    return batch_ingest_records(
        tenant=tenant, actor=LOADER, source=data_source(tenant, "cash_transactions"), records=list(rows)
    )
