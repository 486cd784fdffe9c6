"""Factories for the exceptions tests: tenants, members with roles, breaks as reconciliation sends them."""

from __future__ import annotations

import itertools
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from exceptions.types import BreakInput, fingerprint_of
from jfintech.tenancy.models import Membership, Role, Tenant

_keys = itertools.count(1)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"bank-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())
    timezone = "Europe/London"
    weekend_days = factory.LazyFunction(lambda: [6, 7])


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.django.Password("pw")


def member(tenant, role=Role.ANALYST, username=None, **kwargs):
    user = UserFactory(**({"username": username} if username else {}), **kwargs)
    Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": role})
    return user


def break_input(
    definition_id: int = 1,
    *,
    key: str | None = None,
    break_type: str = "amount_mismatch",
    amount="150.00",
    currency="EUR",
    reference=None,
    account="ACC-1",
    instrument="",
    left_amount="1000.00",
) -> BreakInput:
    """A two-way amount break between a ledger entry and a statement line, snapshot and all."""
    key = key or f"REF-{next(_keys):06d}"
    reference = reference or key
    right_amount = str(Decimal(left_amount) - Decimal(amount or "0"))
    common = {"reference": reference, "account": account, "currency": currency, "value_date": "2026-11-20"}
    left = {"id": 1, "kind": "ledger", "external_id": f"L-{key}", "amount": left_amount, **common}
    right = {"id": 2, "kind": "statement", "external_id": f"S-{key}", "amount": right_amount, **common}
    snapshot = {"left": [left], "right": [right]}
    if break_type == "missing_right":
        snapshot = {"left": [left], "right": []}
    elif break_type == "missing_left":
        snapshot = {"left": [], "right": [right]}
    return BreakInput(
        fingerprint=fingerprint_of(definition_id, [f"ledger:{key}", f"statement:{key}"]),
        break_type=break_type,
        record_ids=[1, 2],
        snapshot=snapshot,
        differences={"amount": {"left": left_amount, "right": right_amount, "delta": amount}},
        amount_at_stake=Decimal(amount) if amount is not None else None,
        currency=currency,
        reference=reference,
        account=account,
        instrument=instrument,
        rule="v1/pass:exact_ref",
    )
