"""What reconciliation hands to ``exceptions.services`` (plain data; no import of reconciliation)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class BreakInput:
    fingerprint: str  # sha256 hex of definition id + sorted natural keys (NOT the break type)
    break_type: str  # exceptions.models.BreakType
    record_ids: list[int]  # reconciliation_record ids (may be empty for position_break / run_failed)
    snapshot: dict  # {"left": [...], "right": [...]} plain JSON, Decimals as strings
    differences: dict  # e.g. {"amount": {"left": "100.00", "right": "99.50", "delta": "0.50"}}
    amount_at_stake: Decimal | None
    currency: str
    reference: str
    account: str
    instrument: str
    rule: str  # rule version / pass, e.g. "v3/pass:exact_ref"


def fingerprint_of(definition_id: int, natural_keys) -> str:
    """The contract's fingerprint: sha256 of the definition id and the sorted natural keys.

    Offered so that reconciliation and tests compute it the same way; the break type is not part
    of it, so the same item in the next run lands on the same case whatever its type.
    """
    keys = sorted(str(k) for k in natural_keys)
    payload = "\x1f".join([str(definition_id), *keys])
    return hashlib.sha256(payload.encode()).hexdigest()
