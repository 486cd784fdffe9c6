"""How a decision on a case reaches the records behind it, without exceptions importing reconciliation.

A final decision (workflow.FINAL_REASONS: written off, force-matched, not a break) must become an
outcome of the case's records — an exclusion or a manual match carrying the case id — so the next
run accounts for them as decided instead of rediscovering the break. The records belong to
reconciliation, and exceptions never imports reconciliation; so reconciliation registers its
``RecordEffects`` here when its app is ready, and the case services call it **inside the decision's
own transaction**: the case's resolution, its audit event and the exclusion or match commit together
or not at all. A refusal from the records' side (a record superseded or matched meanwhile) rolls the
decision back with its reason.

Nothing registered is a loud error, never a decision without its effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from exceptions.workflow import RecordEffect, effect_of


@dataclass(frozen=True)
class Decision:
    """A final decision about one case's records, as reconciliation needs it (plain values)."""

    tenant: object
    actor: object
    case_id: int
    definition_id: int
    record_ids: tuple[int, ...]
    break_type: str
    reason: str
    note: str

    @property
    def effect(self) -> RecordEffect:
        return effect_of(self.reason)


class RecordEffects(Protocol):
    def check(self, decision: Decision) -> None:
        """Raise ApplicationError if the decision cannot be carried out on the records now."""

    def apply(self, decision: Decision) -> dict:
        """Write the exclusion or manual match (in the caller's transaction); returns what it wrote."""

    def undo(self, decision: Decision) -> dict:
        """Put the records back into the open items (in the caller's transaction); returns what it undid."""


_registered: RecordEffects | None = None


def register(effects: RecordEffects) -> None:
    """Called once by reconciliation's AppConfig.ready()."""
    global _registered
    _registered = effects


def registered() -> RecordEffects:
    if _registered is None:
        raise RuntimeError(
            "No record effects registered: a final decision cannot reach its records "
            "(is the reconciliation app installed?)."
        )
    return _registered


def decision_of(case, *, tenant, actor, reason: str, note: str = "") -> Decision:
    return Decision(
        tenant=tenant,
        actor=actor,
        case_id=case.pk,
        definition_id=case.definition_id,
        record_ids=tuple(case.record_ids or ()),
        break_type=case.break_type,
        reason=reason,
        note=note,
    )
