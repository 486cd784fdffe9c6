"""The case workflow as data: which status may follow which, and which resolution reasons a person picks.

    open ──assign──> assigned ──start──> investigating ──resolve──> resolved ──reopen──> open
      │                 │                    │
      └────── request write-off / force-match ──> pending_approval ──approve──> resolved
                                                         └──reject / withdraw──> (status before)

Services consult ``check_transition``; an illegal move is an ApplicationError naming the allowed ones.

Each resolution reason also declares what it does to the records behind the case
(``EFFECT_OF_REASON``); reconciliation carries it out in the decision's transaction
(exceptions.decisions, docs/exceptions.md "Decisions are outcomes of the records").
"""

from __future__ import annotations

from enum import StrEnum

from exceptions.models import CaseStatus, ResolutionReason
from jfintech.common.errors import ApplicationError

S = CaseStatus

TRANSITIONS: dict[str, frozenset[str]] = {
    S.OPEN: frozenset({S.ASSIGNED, S.INVESTIGATING, S.PENDING_APPROVAL, S.RESOLVED}),
    S.ASSIGNED: frozenset({S.OPEN, S.ASSIGNED, S.INVESTIGATING, S.PENDING_APPROVAL, S.RESOLVED}),
    S.INVESTIGATING: frozenset({S.OPEN, S.ASSIGNED, S.PENDING_APPROVAL, S.RESOLVED}),
    # Leaves pending_approval only through a decision (approve → resolved; reject/withdraw → back).
    S.PENDING_APPROVAL: frozenset(),
    S.RESOLVED: frozenset({S.OPEN}),  # reopen
}


class RecordEffect(StrEnum):
    """What resolving a case does to the records behind it."""

    # Final: the records leave the open items for good, until the decision is undone (four-eyes).
    MATCH = "match"  # an active manual match carrying the case id
    EXCLUDE = "exclude"  # an exclusion carrying the case id and the reason: every later run excludes them
    # Expected to clear: the records stay open items; if the same break is there on the next run,
    # the case reopens (loudly, with its history).
    KEEP_OPEN = "keep_open"
    # The run that resolved the case matched the records already: nothing left to do.
    MATCHED_BY_RUN = "matched_by_run"


R = ResolutionReason
EFFECT_OF_REASON: dict[str, RecordEffect] = {
    R.WRITTEN_OFF: RecordEffect.EXCLUDE,
    R.NOT_A_BREAK: RecordEffect.EXCLUDE,
    R.FORCE_MATCHED: RecordEffect.MATCH,
    R.FIXED_AT_SOURCE: RecordEffect.KEEP_OPEN,
    R.TIMING: RecordEffect.KEEP_OPEN,
    R.DUPLICATE_CASE: RecordEffect.KEEP_OPEN,  # the records are followed under another case
    R.RUN_RERUN: RecordEffect.KEEP_OPEN,  # a rerun decides
    R.AUTO_MATCHED: RecordEffect.MATCHED_BY_RUN,
}
FINAL_REASONS = frozenset(
    r for r, e in EFFECT_OF_REASON.items() if e in (RecordEffect.MATCH, RecordEffect.EXCLUDE)
)


def effect_of(reason: str) -> RecordEffect:
    return EFFECT_OF_REASON[reason]


# Reasons a person may pick when resolving directly. written_off / force_matched go through a
# request (four-eyes above the threshold); auto_matched belongs to reconciliation.
MANUAL_REASONS = frozenset(
    {
        ResolutionReason.FIXED_AT_SOURCE,
        ResolutionReason.DUPLICATE_CASE,
        ResolutionReason.NOT_A_BREAK,
        ResolutionReason.RUN_RERUN,
        ResolutionReason.TIMING,
    }
)


def allowed_from(status: str) -> list[str]:
    return sorted(str(s) for s in TRANSITIONS[status])


def check_transition(case, to_status: str) -> None:
    if to_status not in TRANSITIONS.get(case.status, ()):
        allowed = allowed_from(case.status)
        hint = (
            " A pending request is approved, rejected or withdrawn instead."
            if case.status == S.PENDING_APPROVAL
            else ""
        )
        raise ApplicationError(
            f"Case {case.pk} is {case.status}; it cannot move to {to_status}. "
            f"Allowed: {', '.join(allowed) or 'none'}.{hint}",
            code="illegal_transition",
            extra={"case_id": case.pk, "from": case.status, "to": to_status, "allowed": allowed},
            status=409,
        )


def check_manual_reason(reason: str) -> None:
    if reason not in MANUAL_REASONS:
        raise ApplicationError(
            f"'{reason or '(none)'}' is not a reason to resolve directly; allowed: "
            f"{', '.join(sorted(MANUAL_REASONS))}. Write-offs and force-matches are requested "
            "(and approved above the threshold).",
            code="invalid_resolution_reason",
            extra={"allowed": sorted(MANUAL_REASONS)},
        )
