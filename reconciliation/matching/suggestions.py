"""Suggested matches: accepted or rejected by an analyst, audited.

A pass scores each candidate; between its ``suggest_threshold`` and ``auto_threshold`` the engine
stores a ``suggested`` match whose items are inactive (it holds no record: they stay open items).

- Accept: the items become active — the partial unique index refuses it if a record was matched
  meanwhile (409 ``record_already_matched``) — other pending suggestions holding its records expire,
  and the open cases of its records' earlier breaks are resolved.
- Reject (a reason is required): the match becomes ``rejected``; the engine never proposes the
  same set of records again (``_rejected`` in engine.py).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from jfintech import audit
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from jfintech.tenancy import permissions
from reconciliation.matching import metrics
from reconciliation.matching.manual import (
    activate_items,
    expire_suggestions_holding,
    locked_match,
    match_items,
    require_reason,
    resolve_cases_of,
)
from reconciliation.runs.models import Match, MatchStatus

log = get_logger(__name__)


def _pending(tenant, match_id: int) -> Match:
    match = locked_match(tenant, match_id)
    if match.status != MatchStatus.SUGGESTED:
        raise ApplicationError(
            f"Match {match_id} is {match.status}, not a pending suggestion.", code="not_suggested", status=409
        )
    return match


def _decide(match: Match, actor: Actor, status: str, note: str) -> dict:
    before = {"status": match.status}
    match.status = status
    match.decided_by, match.decided_at, match.decision_note = actor.display, timezone.now(), note
    match.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    return before


def suggestion_accept(*, tenant, actor: Actor, match_id: int, note: str = "") -> Match:
    with transaction.atomic():
        permissions.require(tenant=tenant, actor=actor, area="match", verb="decide")
        match = _pending(tenant, match_id)
        activate_items(match)
        before = _decide(match, actor, MatchStatus.ACTIVE, note.strip())
        items = match_items(match.pk)
        record_ids = [item["record_id"] for item in items]
        expired = expire_suggestions_holding(
            tenant_id=tenant.pk, definition_id=match.definition_id, match_id=match.pk, actor=actor
        )
        resolved = resolve_cases_of(
            tenant=tenant, definition_id=match.definition_id, record_ids=record_ids, actor=actor
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="recon_match.suggestion_accepted",
            obj=match,
            before=before,
            after={
                "status": match.status,
                "score": str(match.score),
                "pass": match.pass_name,
                "items": items,
                "note": match.decision_note,
                "suggestions_expired": expired,
                "cases_resolved": resolved,
            },
        )
    metrics.MATCH_DECISIONS.labels(decision="suggestion_accepted").inc()
    log.info("recon_suggestion_accepted", match_id=match.pk, definition_id=match.definition_id)
    return match


def suggestion_reject(*, tenant, actor: Actor, match_id: int, reason: str) -> Match:
    permissions.require(tenant=tenant, actor=actor, area="match", verb="decide")
    reason = require_reason(reason)
    with transaction.atomic():
        match = _pending(tenant, match_id)
        before = _decide(match, actor, MatchStatus.REJECTED, reason)
        audit.record(
            tenant=tenant,
            actor=actor,
            action="recon_match.suggestion_rejected",
            obj=match,
            before=before,
            after={
                "status": match.status,
                "score": str(match.score),
                "pass": match.pass_name,
                "items": match_items(match.pk),
                "reason": reason,
            },
        )
    metrics.MATCH_DECISIONS.labels(decision="suggestion_rejected").inc()
    log.info("recon_suggestion_rejected", match_id=match.pk, definition_id=match.definition_id)
    return match
