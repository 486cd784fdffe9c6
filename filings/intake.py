"""Parties and cash transactions in: the row logic of two kinds ingestion hands over.

They arrive through reconciliation's ingestion (a ``DataSource`` of kind ``parties`` or
``cash_transactions``; CSV upload with the source's column mapping, or JSON push), which keeps the
batch, the sha256 duplicate check, the empty and truncated file rules, one load per source at a
time and every rejection with its reason (reconciliation/ingestion/kinds.py, docs/ingestion.md).
Here: how a row is typed (``_clean``) and stored (``_load_parties``, ``_load_cash``), registered
as the kinds' loaders when the app starts (filings.apps). docs/filings.md, "Data in".

- **Parties** (key ``party_key``): a row that differs from the party's current version becomes
  the next version (the old one is kept, no longer current); an identical row changes nothing.
- **Cash transactions** (key ``external_id``): ``version`` (default 1) or ``amend: true`` (next
  version). A version not above the current one is ``duplicate_key``; a higher one supersedes.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal, InvalidOperation

import pycountry
from django.db import connection

from filings.models import Branch, CashTransaction, PartyVersion
from reconciliation.ingestion import kinds
from reconciliation.ingestion.kinds import KindLoader, Row, RowRejected
from reconciliation.ingestion.validation import VERSION_RE
from reconciliation.models import HandedOffKind

# pg_advisory_xact_lock(namespace, hashtext("tenant:kind")); ingestion's locks are 74201/74202.
_KIND_LOCK_NAMESPACE = 74_203
_TRUE = {"y", "yes", "true", "1"}

PARTY_FIELDS = {
    "party_key": 64,
    "is_entity": 5,
    "last_name": 150,
    "first_name": 35,
    "middle_name": 35,
    "tin": 25,
    "tin_type": 2,
    "birth_date": 10,
    "street": 100,
    "city": 50,
    "state": 3,
    "zip_code": 9,
    "country": 2,
    "id_type": 3,
    "id_number": 25,
    "id_issuer_state": 3,
    "id_issuer_country": 2,
    "occupation": 50,
}
CASH_FIELDS = {
    "external_id": 64,
    "version": 9,
    "amend": 5,
    "business_date": 10,
    "occurred_at": 8,
    "branch_code": 32,
    "direction": 3,
    "amount": 30,
    "currency": 3,
    "account": 40,
    "conducted_by": 64,
    "on_behalf_of": 64,
    "detail_code": 3,
}
REQUIRED = {
    HandedOffKind.PARTIES: ("party_key", "last_name"),
    HandedOffKind.CASH_TRANSACTIONS: (
        "external_id",
        "business_date",
        "branch_code",
        "direction",
        "amount",
        "currency",
        "conducted_by",
    ),
}
DETAIL_CODES = {
    "in": {"55", "46", "23", "12", "14", "49", "997"},
    "out": {"56", "30", "32", "13", "15", "48", "998"},
}


def _text(values: dict, name: str, limit: int) -> str:
    value = values.get(name)
    value = "" if value is None else str(value).strip()
    if "\x00" in value:
        raise RowRejected("malformed_row", f"{name}: NUL byte")
    if len(value) > limit:
        raise RowRejected("field_too_long", f"{name}: more than {limit} characters")
    return value


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowRejected("malformed_date", f"{name}: {value!r} is not a YYYY-MM-DD date") from None


def _clean(kind: str, values: dict) -> dict:
    fields = PARTY_FIELDS if kind == HandedOffKind.PARTIES else CASH_FIELDS
    row = {name: _text(values, name, limit) for name, limit in fields.items()}
    for name in REQUIRED[kind]:
        if not row[name]:
            raise RowRejected("missing_field", f"{name} is required")
    if kind == HandedOffKind.PARTIES:
        row["is_entity"] = row["is_entity"].lower() in _TRUE
        row["birth_date"] = _date(row["birth_date"], "birth_date") if row["birth_date"] else None
        for name in ("country", "id_issuer_country"):
            if row[name] and pycountry.countries.get(alpha_2=row[name].upper()) is None:
                raise RowRejected("unknown_country", f"{name}: {row[name]!r}")
        return row
    row["business_date"] = _date(row["business_date"], "business_date")
    if row["occurred_at"]:
        try:
            row["occurred_at"] = time.fromisoformat(row["occurred_at"])
        except ValueError:
            raise RowRejected("malformed_time", f"occurred_at: {row['occurred_at']!r}") from None
    else:
        row["occurred_at"] = None
    try:
        amount = Decimal(row["amount"])
    except InvalidOperation:
        raise RowRejected("malformed_amount", f"amount: {row['amount']!r}") from None
    if (
        not amount.is_finite()
        or amount <= 0
        or amount.as_tuple().exponent < -6
        or abs(amount) >= Decimal(10) ** 18
    ):
        raise RowRejected("malformed_amount", f"amount: {row['amount']!r} (positive, at most 18+6 digits)")
    row["amount"] = amount
    row["currency"] = row["currency"].upper()
    if pycountry.currencies.get(alpha_3=row["currency"]) is None:
        raise RowRejected("unknown_currency", f"currency: {row['currency']!r}")
    row["direction"] = row["direction"].lower()
    if row["direction"] not in ("in", "out"):
        raise RowRejected("malformed_direction", "direction: in or out")
    row["detail_code"] = row["detail_code"] or ("55" if row["direction"] == "in" else "56")
    if row["detail_code"] not in DETAIL_CODES[row["direction"]]:
        raise RowRejected(
            "malformed_detail_code", f"detail_code {row['detail_code']} is not a cash-{row['direction']} type"
        )
    # Ingestion's rule for a version (ASCII digits: "²".isdigit() is true and int() refuses it).
    if row["version"] and (not VERSION_RE.fullmatch(row["version"]) or not 1 <= int(row["version"]) < 2**31):
        raise RowRejected("malformed_version", f"version: {row['version']!r}")
    row["version"] = int(row["version"]) if row["version"] else None
    row["amend"] = row["amend"].lower() in _TRUE
    return row


def _lock_kind(tenant, kind: str) -> None:
    """One load of a kind per tenant at a time, whichever of its sources it comes from (ingestion
    locks the source): a party's or a transaction's current version is decided by one load."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_KIND_LOCK_NAMESPACE, f"{tenant.pk}:{kind}"]
        )


def load_parties(*, tenant, batch, rows: list[Row]) -> list[tuple[Row, str, str]]:
    _lock_kind(tenant, HandedOffKind.PARTIES)
    keys = [row["party_key"] for _line, _raw, row in rows]
    current = {
        p.party_key: p
        for p in PartyVersion.objects.select_for_update().filter(
            tenant=tenant, party_key__in=keys, is_current=True
        )
    }
    for _line, _raw, row in rows:
        old = current.get(row["party_key"])
        if old is not None and all(getattr(old, f) == v for f, v in row.items()):
            continue  # identical: the current version stands (the row is accepted)
        if old is not None:
            PartyVersion.objects.filter(pk=old.pk).update(is_current=False)
        current[row["party_key"]] = PartyVersion.objects.create(
            tenant=tenant, batch=batch, version=(old.version + 1) if old else 1, **row
        )
    return []


def load_cash(*, tenant, batch, rows: list[Row]) -> list[tuple[Row, str, str]]:
    _lock_kind(tenant, HandedOffKind.CASH_TRANSACTIONS)
    keys = [row["external_id"] for _line, _raw, row in rows]
    current = {
        t.external_id: t
        for t in CashTransaction.objects.select_for_update().filter(
            tenant=tenant, external_id__in=keys, is_current=True
        )
    }
    branches = set(Branch.objects.filter(tenant=tenant).values_list("code", flat=True))
    rejections = []
    for src in rows:
        row = src[2]
        old = current.get(row["external_id"])
        version = row.pop("version")
        amend = row.pop("amend")
        if version is None:
            version = (old.version + 1) if (old and amend) else 1
        if row["branch_code"] not in branches:
            rejections.append(
                (src, "unknown_branch", f"branch_code {row['branch_code']!r} is not configured")
            )
            continue
        if old is not None and version <= old.version:
            rejections.append(
                (src, "duplicate_key", f"{row['external_id']} version {version} is already loaded")
            )
            continue
        if old is not None:
            CashTransaction.objects.filter(pk=old.pk).update(is_current=False)
        current[row["external_id"]] = CashTransaction.objects.create(
            tenant=tenant, batch=batch, version=version, **row
        )
    return rejections


def _cash_key(row: dict) -> str:
    """Two rows of one transaction in a file are one too many unless they are distinct versions."""
    key = f"external id {row['external_id']}"
    if row["version"] is not None:
        key += f" version {row['version']}"
    return key + (" (amend)" if row["amend"] else "")


def register() -> None:
    """Make these the loaders of ingestion's parties and cash_transactions kinds (filings.apps)."""
    kinds.register(
        KindLoader(
            kind=HandedOffKind.PARTIES,
            fields=tuple(PARTY_FIELDS),
            required=REQUIRED[HandedOffKind.PARTIES],
            clean=lambda values: _clean(HandedOffKind.PARTIES, values),
            key=lambda row: f"party {row['party_key']}",
            load=load_parties,
        )
    )
    kinds.register(
        KindLoader(
            kind=HandedOffKind.CASH_TRANSACTIONS,
            fields=tuple(CASH_FIELDS),
            required=REQUIRED[HandedOffKind.CASH_TRANSACTIONS],
            clean=lambda values: _clean(HandedOffKind.CASH_TRANSACTIONS, values),
            key=_cash_key,
            load=load_cash,
        )
    )
