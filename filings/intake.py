"""Parties and cash transactions in: a JSON push or a CSV file, one batch each.

The same contract as reconciliation's ingestion (docs/ingestion.md): the batch is hashed and a
file already loaded is a ``duplicate`` batch that loads nothing; every row is accepted or stored
as a rejection with its reason and line number (accepted + rejected = total is a check
constraint); a batch where every row is rejected is ``rejected``; amendments are versions.

Why not ingestion's own pipeline: its loader COPYs into the partitioned ``reconciliation_record``
table with record kinds fixed by that table; routing two new kinds to filings' tables would mean
changing its loader while its truncation handling is being reworked. These rows are few (a bank's
cash desk, not its ledger), so a plain ORM load under the same rules is enough. docs/filings.md.

- **Parties** (key ``party_key``): a row that differs from the party's current version becomes
  the next version (the old one is kept, no longer current); an identical row changes nothing.
- **Cash transactions** (key ``external_id``): ``version`` (default 1) or ``amend: true`` (next
  version). A version not above the current one is ``duplicate_key``; a higher one supersedes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation

import pycountry
from django.db import transaction

from filings.models import Branch, CashTransaction, IntakeBatch, IntakeRejection, PartyVersion
from jfintech import audit
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.permissions import require

MAX_ROWS = 100_000
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
    IntakeBatch.Kind.PARTY: ("party_key", "last_name"),
    IntakeBatch.Kind.CASH: (
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


class RowRejected(Exception):
    def __init__(self, reason: str, message: str):
        self.reason, self.message = reason, message


@dataclass
class _Row:
    line_no: int
    raw: str
    values: dict


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
    fields = PARTY_FIELDS if kind == IntakeBatch.Kind.PARTY else CASH_FIELDS
    if not isinstance(values, dict):
        raise RowRejected("malformed_row", "not an object")
    row = {name: _text(values, name, limit) for name, limit in fields.items()}
    for name in REQUIRED[kind]:
        if not row[name]:
            raise RowRejected("missing_field", f"{name} is required")
    if kind == IntakeBatch.Kind.PARTY:
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
    if row["version"] and (not row["version"].isdigit() or not 1 <= int(row["version"]) < 2**31):
        raise RowRejected("malformed_version", f"version: {row['version']!r}")
    row["version"] = int(row["version"]) if row["version"] else None
    row["amend"] = row["amend"].lower() in _TRUE
    return row


def _json_rows(records: list) -> list[_Row]:
    return [
        _Row(i, json.dumps(r, sort_keys=True, default=str)[:2000], r) for i, r in enumerate(records, start=1)
    ]


def _csv_rows(data: bytes, columns: dict[str, str] | None) -> list[_Row]:
    """Rows of a CSV file with a header; ``columns`` maps a field to its header (default: same name)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApplicationError(f"The file is not UTF-8: {exc}", code="malformed_file") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ApplicationError("The file is empty.", code="malformed_file")
    columns = columns or {}
    index = {
        field: header.index(columns.get(field, field))
        for field in {*PARTY_FIELDS, *CASH_FIELDS}
        if columns.get(field, field) in header
    }
    rows = []
    for values in reader:
        line_no = reader.line_num
        raw = ",".join(values)[:2000]
        if len(values) != len(header):
            rows.append(_Row(line_no, raw, None))  # rejected as malformed_row below
            continue
        rows.append(_Row(line_no, raw, {field: values[i] for field, i in index.items()}))
    return rows


def _load_parties(tenant, batch, accepted: list[tuple[_Row, dict]], rejections: list) -> int:
    keys = [row["party_key"] for _, row in accepted]
    current = {
        p.party_key: p
        for p in PartyVersion.objects.select_for_update().filter(
            tenant=tenant, party_key__in=keys, is_current=True
        )
    }
    loaded = 0
    for _src, row in accepted:
        old = current.get(row["party_key"])
        if old is not None and all(getattr(old, f) == v for f, v in row.items()):
            loaded += 1  # identical: the current version stands
            continue
        if old is not None:
            PartyVersion.objects.filter(pk=old.pk).update(is_current=False)
        current[row["party_key"]] = PartyVersion.objects.create(
            tenant=tenant, batch=batch, version=(old.version + 1) if old else 1, **row
        )
        loaded += 1
    return loaded


def _load_cash(tenant, batch, accepted: list[tuple[_Row, dict]], rejections: list) -> int:
    keys = [row["external_id"] for _, row in accepted]
    current = {
        t.external_id: t
        for t in CashTransaction.objects.select_for_update().filter(
            tenant=tenant, external_id__in=keys, is_current=True
        )
    }
    branches = set(Branch.objects.filter(tenant=tenant).values_list("code", flat=True))
    loaded = 0
    for src, row in accepted:
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
        loaded += 1
    return loaded


def _ingest(*, tenant, actor, kind: str, rows: list[_Row], sha256: str, file_name: str) -> IntakeBatch:
    require(tenant=tenant, actor=actor, area="filing_data", verb="upload")
    if len(rows) > MAX_ROWS:
        raise ApplicationError(f"At most {MAX_ROWS} rows a batch.", code="too_many_rows", status=413)
    with transaction.atomic():
        # One load per tenant and kind at a time: the duplicate check and the versions hold.
        transaction.get_connection().cursor().execute(
            "SELECT pg_advisory_xact_lock(74202, hashtext(%s))", [f"{tenant.pk}:{kind}"]
        )
        loaded_before = IntakeBatch.objects.filter(
            tenant=tenant, kind=kind, sha256=sha256, status="loaded"
        ).first()
        if loaded_before is not None:
            batch = IntakeBatch.objects.create(
                tenant=tenant,
                kind=kind,
                file_name=file_name[:255],
                sha256=sha256,
                status="duplicate",
                duplicate_of=loaded_before,
                created_by=actor.display[:200],
            )
            audit.record(
                tenant=tenant,
                actor=actor,
                action="filing_data.duplicate",
                obj=batch,
                after={"duplicate_of": loaded_before.pk},
            )
            return batch
        batch = IntakeBatch.objects.create(
            tenant=tenant,
            kind=kind,
            file_name=file_name[:255],
            sha256=sha256,
            status="loaded",
            created_by=actor.display[:200],
        )
        accepted, rejections, seen = [], [], set()
        key = "party_key" if kind == IntakeBatch.Kind.PARTY else "external_id"
        for src in rows:
            try:
                if src.values is None:
                    raise RowRejected("malformed_row", "wrong number of columns")
                row = _clean(kind, src.values)
            except RowRejected as exc:
                rejections.append((src, exc.reason, exc.message))
                continue
            dedupe = row[key] if kind == IntakeBatch.Kind.PARTY else (row[key], row["version"], row["amend"])
            if dedupe in seen:  # first occurrence wins, as in ingestion
                rejections.append((src, "duplicate_key", f"{row[key]} repeated in the file"))
                continue
            seen.add(dedupe)
            accepted.append((src, row))
        load = _load_parties if kind == IntakeBatch.Kind.PARTY else _load_cash
        n_loaded = load(tenant, batch, accepted, rejections)
        IntakeRejection.objects.bulk_create(
            IntakeRejection(
                tenant=tenant, batch=batch, line_no=src.line_no, raw=src.raw, reason=reason, message=message
            )
            for src, reason, message in rejections
        )
        status = "rejected" if rows and n_loaded == 0 else "loaded"
        IntakeBatch.objects.filter(pk=batch.pk).update(
            status=status, rows_total=len(rows), rows_accepted=n_loaded, rows_rejected=len(rejections)
        )
        batch.refresh_from_db()
        audit.record(
            tenant=tenant,
            actor=actor,
            action=f"filing_data.{status}",
            obj=batch,
            after={
                "kind": kind,
                "rows_total": batch.rows_total,
                "rows_accepted": n_loaded,
                "rows_rejected": len(rejections),
            },
        )
    return batch


def intake_push(*, tenant, actor, kind: str, records: list, file_name: str = "") -> IntakeBatch:
    """JSON push: a list of objects. The same list twice is a duplicate batch."""
    if kind not in IntakeBatch.Kind.values:
        raise ApplicationError(f"kind must be one of {IntakeBatch.Kind.values}", code="invalid")
    if not isinstance(records, list):
        raise ApplicationError("expected a list of records", code="invalid")
    canonical = json.dumps(records, sort_keys=True, separators=(",", ":"), default=str).encode()
    return _ingest(
        tenant=tenant,
        actor=actor,
        kind=kind,
        rows=_json_rows(records),
        sha256=hashlib.sha256(canonical).hexdigest(),
        file_name=file_name or "records.json",
    )


def intake_csv(
    *, tenant, actor, kind: str, data: bytes, file_name: str = "", columns: dict | None = None
) -> IntakeBatch:
    """CSV file with a header row (``columns`` maps field -> header). The same bytes twice is a duplicate."""
    if kind not in IntakeBatch.Kind.values:
        raise ApplicationError(f"kind must be one of {IntakeBatch.Kind.values}", code="invalid")
    return _ingest(
        tenant=tenant,
        actor=actor,
        kind=kind,
        rows=_csv_rows(data, columns),
        sha256=hashlib.sha256(data).hexdigest(),
        file_name=file_name or "upload.csv",
    )
