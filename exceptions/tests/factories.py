"""Factories for the exceptions tests: tenants, members with roles, breaks as reconciliation sends them."""

from __future__ import annotations

import itertools
from decimal import Decimal

from exceptions.types import BreakInput, fingerprint_of
from jfintech.tests.factories import TenantFactory, UserFactory, member

__all__ = ["TenantFactory", "UserFactory", "break_input", "member"]

_keys = itertools.count(1)


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
