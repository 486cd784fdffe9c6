"""Factories for the runs tests: definitions through the services, records set-based into the
partitioned table (one multi-row INSERT per call, partitions ensured first, outside any transaction)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import date
from decimal import Decimal

import factory
from django.db import connection, transaction

from jfintech.audit import Actor
from jfintech.tests.factories import TenantFactory
from reconciliation.models import DataSource, IngestionBatch
from reconciliation.partitions import ensure_partitions
from reconciliation.runs import services

ACTOR = Actor.for_system("tests")
AS_OF = date(2026, 11, 20)
_ids = itertools.count(1)

__all__ = ["AS_OF", "SourceFactory", "TenantFactory", "amend", "definition", "records"]


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataSource
        django_get_or_create = ("tenant", "name")

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"source-{n}")
    kind = "ledger"


def definition(
    tenant, *, kind="two_way", rules=None, name=None, left_kind="ledger", right_kind="statement", **options
):
    """A definition with one fresh source per side (three-way: position/trade/settlement)."""
    name = name or f"def-{next(_ids)}"
    if kind == "three_way":
        sides = {"position": "position", "left": "trade", "right": "settlement"}
    else:
        sides = {"left": left_kind, "right": right_kind}
    sources = {
        side: [SourceFactory(tenant=tenant, name=f"{name}-{side}", kind=k)] for side, k in sides.items()
    }
    return services.definition_create(
        tenant=tenant, actor=ACTOR, name=name, kind=kind, sources=sources, rules=rules, **options
    )


def source_of(definition_, side: str) -> DataSource:
    return definition_.sources.get(side=side).source


_COLUMNS = (
    "external_id",
    "business_date",
    "account",
    "instrument",
    "reference",
    "currency",
    "amount",
    "quantity",
    "trade_date",
    "value_date",
    "status",
    "version",
)


def records(source: DataSource, *rows: dict) -> list[int]:
    """Insert records of ``source``; each row a dict of record fields (defaults: today's as-of date,
    EUR, a unique external id). Returns their ids in order."""
    if not rows:
        return []
    full = []
    for row in rows:
        n = next(_ids)
        r = {
            "external_id": f"X{n}",
            "business_date": AS_OF,
            "account": "",
            "instrument": "",
            "reference": "",
            "currency": "EUR",
            "amount": None,
            "quantity": None,
            "trade_date": None,
            "value_date": None,
            "status": "active",
            "version": 1,
        } | row
        if r["amount"] is not None:
            r["amount"] = Decimal(str(r["amount"]))
        if r["quantity"] is not None:
            r["quantity"] = Decimal(str(r["quantity"]))
        full.append(r)
    dates = [r["business_date"] for r in full]
    ensure_partitions(min(dates), max(dates))
    digest = hashlib.sha256(repr(full).encode()).hexdigest()
    with transaction.atomic():
        batch = IngestionBatch.objects.create(
            tenant_id=source.tenant_id,
            source=source,
            sha256=digest,
            status="loaded",
            rows_total=len(full),
            rows_accepted=len(full),
            rows_rejected=0,
            file_name="factory",
        )
        values = ", ".join(["(%s, %s, %s, %s" + ", %s" * len(_COLUMNS) + ")"] * len(full))
        params = []
        for r in full:
            params += [source.tenant_id, source.pk, batch.pk, source.kind] + [r[c] for c in _COLUMNS]
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO reconciliation_record (tenant_id, source_id, batch_id, kind, "
                f"{', '.join(_COLUMNS)}) VALUES {values} RETURNING id",
                params,
            )
            return [row[0] for row in cursor.fetchall()]


def amend(source: DataSource, record_id: int, **changes) -> int:
    """An amendment: a new active version of the record with ``changes``; the old one superseded."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT external_id, business_date, account, instrument, reference, currency, amount, quantity,"
            " trade_date, value_date, version FROM reconciliation_record WHERE id = %s",
            [record_id],
        )
        values = dict(zip((*_COLUMNS[:-2], "version"), cursor.fetchone(), strict=True))
        cursor.execute("UPDATE reconciliation_record SET status = 'superseded' WHERE id = %s", [record_id])
    values["version"] += 1
    return records(source, values | changes)[0]


def reverse(record_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE reconciliation_record SET status = 'reversed' WHERE id = %s", [record_id])
