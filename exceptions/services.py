"""Writes of the exceptions app. Reconciliation opens, updates and resolves cases only through here.

Run-driven writes are set-based (one ``INSERT … ON CONFLICT … DO UPDATE`` per chunk of breaks, one
``UPDATE … RETURNING`` for resolutions): a run can produce tens of thousands of breaks. They are
idempotent per run id: a case remembers the last run that touched it, and a run never changes a case
that the same or a later run already touched, so a redelivered task changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from decimal import Decimal

import requests
from django.db import connection, models, transaction
from django.utils import timezone

from exceptions import decisions, metrics, signals, sla, workflow
from exceptions.models import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalThreshold,
    BreakType,
    Case,
    CaseComment,
    CaseStatus,
    Priority,
    ResolutionReason,
    RootCauseCategory,
    SlaWebhook,
    WebhookDelivery,
)
from exceptions.types import BreakInput, fingerprint_of
from jfintech import audit
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from jfintech.tenancy import permissions
from jfintech.tenancy.models import Role, Tenant
from jfintech.tenancy.selectors import role_of

log = get_logger(__name__)

CASE_OBJECT_TYPE = Case._meta.label_lower  # "exceptions.case": history is AuditEvent rows of this type
WEBHOOK_TIMEOUT_S = 10
WEBHOOK_BACKOFF_S = 30.0  # first retry after ~30 s, then 60, 120, … (exceptions.tasks.deliver_webhook)
WEBHOOK_MAX_ATTEMPTS = 8  # ~2 hours of retries before the delivery is FAILED (loudly)
SYNC_CHUNK = 5000  # breaks per statement: bounded parameter size, still one round trip per 5k cases


class _Encoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, Decimal):
            return str(o)  # money stays exact on its way to NUMERIC
        return super().default(o)


def _tenant_id(tenant) -> int:
    return tenant.pk


def _triage_defaults(*, tenant, break_type, amount_at_stake, now) -> tuple[str, str]:
    """(priority, sla_due_at ISO) for a case a run opens; the rules live in exceptions.sla."""
    priority = sla.priority_for(break_type=break_type, amount=amount_at_stake)
    return priority, sla.sla_due_at(tenant=tenant, priority=priority, opened_at=now).isoformat()


_UPSERT_SQL = """
WITH b AS (
    SELECT * FROM jsonb_to_recordset(%(breaks)s::jsonb) AS x(
        fingerprint text, break_type text, record_ids bigint[], snapshot jsonb, differences jsonb,
        amount_at_stake numeric, currency text, reference text, account text, instrument text,
        rule text, priority text, sla_due_at timestamptz)
), prior AS (
    SELECT c.fingerprint, c.status, c.break_type, c.resolution_reason, c.amount_at_stake
    FROM exceptions_case c
    WHERE c.tenant_id = %(tenant)s AND c.fingerprint IN (SELECT fingerprint FROM b)
), up AS (
    INSERT INTO exceptions_case AS c (
        tenant_id, fingerprint, break_type, record_ids, snapshot, differences, amount_at_stake,
        currency, reference, account, instrument, definition_id, definition_name, rule,
        first_run_id, last_run_id, run_count, trace_id, status, resolution_reason, resolution_note,
        reopen_count, priority, sla_due_at, first_seen_at, last_seen_at, opened_at, resolved_by,
        created_at, updated_at)
    SELECT %(tenant)s, b.fingerprint, b.break_type, coalesce(b.record_ids, '{}'), b.snapshot,
        b.differences, b.amount_at_stake, coalesce(b.currency, ''), coalesce(b.reference, ''),
        coalesce(b.account, ''), coalesce(b.instrument, ''), %(definition_id)s, %(definition_name)s,
        coalesce(b.rule, ''), %(run_id)s, %(run_id)s, 1, %(trace_id)s, 'open', '', '', 0,
        b.priority, b.sla_due_at, %(now)s, %(now)s, %(now)s, '', %(now)s, %(now)s
    FROM b
    ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET
        break_type = EXCLUDED.break_type,
        record_ids = EXCLUDED.record_ids,
        snapshot = EXCLUDED.snapshot,
        differences = EXCLUDED.differences,
        amount_at_stake = EXCLUDED.amount_at_stake,
        currency = EXCLUDED.currency,
        reference = EXCLUDED.reference,
        account = EXCLUDED.account,
        instrument = EXCLUDED.instrument,
        definition_name = EXCLUDED.definition_name,
        rule = EXCLUDED.rule,
        last_run_id = EXCLUDED.last_run_id,
        run_count = c.run_count + 1,
        trace_id = EXCLUDED.trace_id,
        last_seen_at = EXCLUDED.last_seen_at,
        updated_at = EXCLUDED.updated_at,
        -- A resolved item that breaks again is reopened (same case, same history), back to its
        -- assignee if it still has one; the SLA clock restarts from now.
        status = CASE WHEN c.status <> 'resolved' THEN c.status
                      WHEN c.assignee_id IS NULL THEN 'open' ELSE 'assigned' END,
        resolution_reason = CASE WHEN c.status = 'resolved' THEN '' ELSE c.resolution_reason END,
        resolution_note = CASE WHEN c.status = 'resolved' THEN '' ELSE c.resolution_note END,
        resolved_at = CASE WHEN c.status = 'resolved' THEN NULL ELSE c.resolved_at END,
        resolved_by = CASE WHEN c.status = 'resolved' THEN '' ELSE c.resolved_by END,
        opened_at = CASE WHEN c.status = 'resolved' THEN EXCLUDED.opened_at ELSE c.opened_at END,
        sla_breached_at = CASE WHEN c.status = 'resolved' THEN NULL ELSE c.sla_breached_at END,
        reopen_count = c.reopen_count + (c.status = 'resolved')::int,
        priority = CASE WHEN c.status = 'resolved' THEN EXCLUDED.priority ELSE c.priority END,
        sla_due_at = CASE WHEN c.status = 'resolved' THEN EXCLUDED.sla_due_at ELSE c.sla_due_at END
    -- Idempotent per run: the same (redelivered) or an older run never touches the case again.
    WHERE c.last_run_id < EXCLUDED.last_run_id
    RETURNING c.id, c.fingerprint, c.status, c.break_type, c.amount_at_stake, c.currency,
              (c.xmax = 0) AS inserted, c.priority, c.assignee_id, c.sla_due_at
)
SELECT up.id, up.fingerprint, up.status, up.break_type, up.amount_at_stake, up.currency, up.inserted,
       prior.status AS prior_status, prior.break_type AS prior_break_type,
       prior.resolution_reason AS prior_reason,
       up.priority, up.assignee_id, up.sla_due_at, prior.amount_at_stake AS prior_amount
FROM up LEFT JOIN prior USING (fingerprint)
"""


def _check_breaks(breaks: list[BreakInput]) -> None:
    valid_types = set(BreakType.values)
    bad = sorted({b.break_type for b in breaks} - valid_types)
    if bad:
        raise ApplicationError(
            f"Unknown break type(s): {', '.join(bad)}.",
            code="unknown_break_type",
            extra={"allowed": sorted(valid_types)},
        )
    seen = Counter(b.fingerprint for b in breaks)
    doubled = [fp for fp, n in seen.items() if n > 1]
    if doubled:
        # One case per fingerprint: two breaks with one fingerprint is a bug upstream; say so loudly.
        raise ApplicationError(
            f"{len(doubled)} fingerprint(s) appear more than once in one run's breaks.",
            code="duplicate_fingerprint",
            extra={"fingerprints": doubled[:20]},
        )


def cases_sync_for_run(
    *,
    tenant,
    definition_id: int,
    definition_name: str,
    run_id: int,
    trace_id: str,
    breaks: list[BreakInput],
    actor,
    matched_fingerprints=(),
) -> dict:
    """Upsert one case per break's fingerprint; resolve ``matched_fingerprints`` as auto_matched.

    Returns {"opened", "reopened", "updated", "resolved"} (``opened`` counts new and reopened
    cases). Audit: one event per case opened, reopened, changed type or resolved, plus one summary
    event for the run; a plain "seen again" is on the case row (last_run_id, run_count).
    """
    _check_breaks(breaks)
    now = timezone.now()
    counts = {"opened": 0, "reopened": 0, "updated": 0, "resolved": 0}
    reopened: list[tuple[int, str]] = []
    triage_cache: dict = {}
    with transaction.atomic():
        for start in range(0, len(breaks), SYNC_CHUNK):
            rows = []
            for b in breaks[start : start + SYNC_CHUNK]:
                row = dict(vars(b))  # shallow: asdict() would deep-copy every snapshot
                key = (b.break_type, b.amount_at_stake)
                if key not in triage_cache:  # the calendar walk once per distinct (type, amount)
                    triage_cache[key] = _triage_defaults(
                        tenant=tenant, break_type=b.break_type, amount_at_stake=b.amount_at_stake, now=now
                    )
                row["priority"], row["sla_due_at"] = triage_cache[key]
                rows.append(row)
            params = {
                "breaks": json.dumps(rows, cls=_Encoder),
                "tenant": _tenant_id(tenant),
                "definition_id": definition_id,
                "definition_name": definition_name,
                "run_id": run_id,
                "trace_id": trace_id or "",
                "now": now,
            }
            with connection.cursor() as cursor:
                cursor.execute(_UPSERT_SQL, params)
                changed = cursor.fetchall()
            events = []
            for (
                case_id,
                fp,
                status,
                btype,
                amount,
                currency,
                inserted,
                prior_status,
                prior_type,
                prior_reason,
                priority,
                assignee_id,
                sla_due,
                prior_amount,
            ) in changed:
                # The full triage state, so the case history alone re-creates the case as it stood
                # at any moment (reporting's as-of inventory, docs/reporting.md).
                after = {
                    "fingerprint": fp,
                    "status": status,
                    "break_type": btype,
                    "run_id": run_id,
                    "amount_at_stake": amount,
                    "currency": currency,
                    "priority": priority,
                    "assignee_id": assignee_id,
                    "sla_due_at": sla_due,
                }
                if inserted:
                    counts["opened"] += 1
                    events.append(_case_event("case.opened", case_id, None, after))
                elif prior_status == CaseStatus.RESOLVED:
                    counts["opened"] += 1
                    counts["reopened"] += 1
                    reopened.append((case_id, prior_reason))
                    # The history says what it had been resolved as, and that the records were left
                    # open by that decision (an expected-to-clear reason) — or, for a final decision,
                    # that the item came back anyway (e.g. an amended record: a new version to look at).
                    before = {
                        "status": prior_status,
                        "resolution_reason": prior_reason,
                        "effect": workflow.effect_of(prior_reason),
                    }
                    events.append(_case_event("case.reopened", case_id, before, after))
                else:
                    counts["updated"] += 1
                    if prior_type != btype:
                        events.append(
                            _case_event("case.break_type_changed", case_id, {"break_type": prior_type}, after)
                        )
                    elif prior_amount != amount:  # a changed amount at stake is history too
                        events.append(
                            _case_event(
                                "case.amount_changed", case_id, {"amount_at_stake": prior_amount}, after
                            )
                        )
            # One INSERT for the chunk's events: a first run can open tens of thousands of cases.
            audit.record_many(tenant=tenant, actor=actor, events=events)
        if reopened:
            _withdraw_pending(
                tenant=tenant,
                case_ids=[c for c, _ in reopened],
                actor=actor,
                note=f"reopened by run {run_id}",
            )
        if matched_fingerprints:
            counts["resolved"] = cases_resolve_matched(
                tenant=tenant,
                definition_id=definition_id,
                run_id=run_id,
                trace_id=trace_id,
                matched_fingerprints=matched_fingerprints,
                actor=actor,
            )
        if any(counts.values()):
            audit.record(
                tenant=tenant,
                actor=actor,
                action="cases.synced_for_run",
                object_type="exceptions.run_sync",
                object_id=f"{definition_id}:{run_id}",
                after={**counts, "definition_id": definition_id, "run_id": run_id, "breaks": len(breaks)},
            )
    _count_transition(CaseStatus.OPEN, counts["opened"])
    log.info("cases_synced_for_run", definition_id=definition_id, **{"recon.run_id": run_id}, **counts)
    if reopened:
        log.warning(
            "cases_reopened_by_run",
            definition_id=definition_id,
            reopened=len(reopened),
            by_prior_reason=dict(Counter(reason for _, reason in reopened)),
            case_ids=[c for c, _ in reopened[:50]],
            **{"recon.run_id": run_id},
        )
    return counts


_RESOLVE_SQL = """
WITH target AS (
    SELECT id, status FROM exceptions_case
    WHERE tenant_id = %(tenant)s AND definition_id = %(definition_id)s
      AND fingerprint = ANY(%(fingerprints)s) AND status <> 'resolved'
      AND last_run_id <= %(run_id)s   -- a case a later run saw again stays as that run left it
    FOR UPDATE
)
UPDATE exceptions_case c SET status = 'resolved', resolution_reason = 'auto_matched',
    resolution_note = %(note)s, resolved_at = %(now)s, resolved_by = %(by)s, updated_at = %(now)s,
    last_run_id = %(run_id)s, trace_id = %(trace_id)s   -- the case links the run that resolved it
FROM target WHERE c.id = target.id
RETURNING c.id, c.fingerprint, target.status
"""


def cases_resolve_matched(
    *, tenant, definition_id: int, run_id: int, trace_id: str, matched_fingerprints: list[str], actor
) -> int:
    """Resolve (auto_matched) every unresolved case of the definition whose records run ``run_id`` matched.

    Idempotent: a second call finds them resolved and changes nothing. Returns how many it resolved.
    """
    fingerprints = sorted(set(matched_fingerprints))
    if not fingerprints:
        return 0
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                _RESOLVE_SQL,
                {
                    "tenant": _tenant_id(tenant),
                    "definition_id": definition_id,
                    "fingerprints": fingerprints,
                    "run_id": run_id,
                    "trace_id": trace_id or "",
                    "now": now,
                    "note": f"records matched in run {run_id}",
                    "by": actor.display,
                },
            )
            resolved = cursor.fetchall()
        audit.record_many(
            tenant=tenant,
            actor=actor,
            events=[
                _case_event(
                    "case.resolved",
                    case_id,
                    {"status": prior_status},
                    {
                        "status": "resolved",
                        "resolution_reason": ResolutionReason.AUTO_MATCHED,
                        "run_id": run_id,
                        "fingerprint": fp,
                    },
                )
                for case_id, fp, prior_status in resolved
            ],
        )
        _after_auto_resolve(tenant=tenant, case_ids=[r[0] for r in resolved], actor=actor)
    _count_transition(CaseStatus.RESOLVED, len(resolved))
    if resolved:
        log.info(
            "cases_auto_matched",
            definition_id=definition_id,
            resolved=len(resolved),
            **{"recon.run_id": run_id},
        )
    return len(resolved)


def _after_auto_resolve(*, tenant, case_ids: list[int], actor) -> None:
    """A pending write-off of a case whose records matched is moot: withdraw it (audited on the case)."""
    _withdraw_pending(tenant=tenant, case_ids=case_ids, actor=actor, note="records matched")


def _withdraw_pending(*, tenant, case_ids: list[int], actor, note: str) -> None:
    """Withdraw the pending requests of cases a run changed under them (audited on the case)."""
    if not case_ids:
        return
    pending = ApprovalRequest.objects.select_for_update().filter(
        tenant=tenant, case_id__in=case_ids, status=ApprovalStatus.PENDING
    )
    for approval in pending:
        _close_approval(approval, actor=actor, status=ApprovalStatus.WITHDRAWN, note=note)
        _audit_case(
            tenant,
            actor,
            "case.approval_withdrawn",
            approval.case_id,
            None,
            {"approval_id": approval.pk, "note": note},
        )


def case_open_for_failed_run(
    *, tenant, definition_id: int, definition_name: str, run_id: int, trace_id: str, error: str, actor
) -> Case:
    """One case per failed run, so the analysts see the failure next to the breaks. Idempotent."""
    fingerprint = fingerprint_of(definition_id, [f"run_failed:{run_id}"])
    failure = BreakInput(
        fingerprint=fingerprint,
        break_type=BreakType.RUN_FAILED,
        record_ids=[],
        snapshot={"run": {"run_id": run_id, "definition": definition_name, "trace_id": trace_id}},
        differences={"error": error[:4000]},
        amount_at_stake=None,
        currency="",
        reference=f"run {run_id}",
        account="",
        instrument="",
        rule="",
    )
    cases_sync_for_run(
        tenant=tenant,
        definition_id=definition_id,
        definition_name=definition_name,
        run_id=run_id,
        trace_id=trace_id,
        breaks=[failure],
        actor=actor,
    )
    log.error(
        "case_opened_for_failed_run",
        definition_id=definition_id,
        error=error[:500],
        run_trace_id=trace_id,
        **{"recon.run_id": run_id},
    )
    return Case.objects.get(tenant_id=_tenant_id(tenant), fingerprint=fingerprint)


def _case_event(action: str, case_id: int, before, after) -> dict:
    return {
        "action": action,
        "object_type": CASE_OBJECT_TYPE,
        "object_id": case_id,
        "before": before,
        "after": after,
    }


def _audit_case(tenant, actor, action: str, case_id: int, before, after) -> None:
    audit.record(
        tenant=tenant,
        actor=actor,
        action=action,
        object_type=CASE_OBJECT_TYPE,
        object_id=case_id,
        before=before,
        after=after,
    )


def _count_transition(to_status: str, n: int) -> None:
    if n:
        metrics.CASE_TRANSITIONS.labels(to_status=str(to_status)).inc(n)


# --- The triage workflow (issue 7): every change of a case by a person goes through here ---------

DESK_ROLES = frozenset({Role.ANALYST, Role.APPROVER, Role.ADMIN})
APPROVER_ROLES = frozenset({Role.APPROVER})  # four-eyes: only the approver role checks


def _principal(actor) -> str:
    return f"{actor.kind}:{actor.id}"


def _locked_case(tenant, case_id) -> Case:
    case = Case.objects.select_for_update().filter(tenant=tenant, pk=case_id).first()
    if case is None:
        raise ApplicationError(f"No case {case_id} in this tenant.", code="case_not_found", status=404)
    return case


def _snapshot(case) -> dict:
    return {
        "status": case.status,
        "assignee_id": case.assignee_id,
        "priority": case.priority,
        "sla_due_at": case.sla_due_at,
        "root_cause_id": case.root_cause_id,
        "resolution_reason": case.resolution_reason,
    }


def _save(
    case,
    *,
    tenant,
    actor,
    action: str,
    before: dict,
    extra_after: dict | None = None,
    apply_decision: bool = False,
) -> Case:
    """full_clean + save + audit event in the caller's transaction; counts a status change.

    ``apply_decision``: the case was just resolved; its decision's effect on the records is written
    after the save (so the match's own case resolution finds the case resolved) and named in the
    same audit event: the decision and its effect are one entry of the history, one commit."""
    case.full_clean(exclude=["tenant", "root_cause", "assignee"])
    case.save()
    effect = _apply_decision(case, tenant=tenant, actor=actor) if apply_decision else {}
    _audit_case(tenant, actor, action, case.pk, before, {**_snapshot(case), **(extra_after or {}), **effect})
    if case.status != before.get("status") or action == "case.assigned":
        transaction.on_commit(lambda: _count_transition(case.status, 1))
    return case


def _check_member(tenant, user) -> None:
    role = role_of(user, tenant)
    if role not in DESK_ROLES:
        raise ApplicationError(
            f"{user} is not an analyst, approver or admin of this tenant.",
            code="not_a_desk_member",
            extra={"user_id": user.pk, "role": role},
        )


def case_assign(*, tenant, actor, case_id: int, assignee) -> Case:
    """Assign (``assignee`` a user) or unassign (None → back to open)."""
    with transaction.atomic():
        permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
        case = _locked_case(tenant, case_id)
        before = _snapshot(case)
        if assignee is None:
            workflow.check_transition(case, CaseStatus.OPEN)
            case.assignee, case.status = None, CaseStatus.OPEN
            return _save(case, tenant=tenant, actor=actor, action="case.unassigned", before=before)
        _check_member(tenant, assignee)
        workflow.check_transition(case, CaseStatus.ASSIGNED)
        keep_investigating = case.status == CaseStatus.INVESTIGATING and case.assignee_id == assignee.pk
        case.assignee = assignee
        case.status = CaseStatus.INVESTIGATING if keep_investigating else CaseStatus.ASSIGNED
        return _save(
            case,
            tenant=tenant,
            actor=actor,
            action="case.assigned",
            before=before,
            extra_after={"assignee": assignee.get_username()},
        )


def case_start_investigating(*, tenant, actor, user, case_id: int) -> Case:
    """The person starts work; an unassigned case becomes theirs."""
    with transaction.atomic():
        permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
        case = _locked_case(tenant, case_id)
        before = _snapshot(case)
        workflow.check_transition(case, CaseStatus.INVESTIGATING)
        if case.assignee_id is None:
            if user is None:  # an API key (jfintech.audit Actor) is never an assignee
                raise ApplicationError(
                    f"Case {case.pk} has no assignee and an API key cannot take it: assign it to a "
                    "user first.",
                    code="not_a_person",
                    status=403,
                )
            _check_member(tenant, user)
            case.assignee = user
        case.status = CaseStatus.INVESTIGATING
        return _save(case, tenant=tenant, actor=actor, action="case.investigating", before=before)


def case_resolve(*, tenant, actor, case_id: int, reason: str, note: str = "") -> Case:
    """Resolve directly with a manual reason (fixed_at_source, timing, duplicate_case, not_a_break,
    run_rerun). ``not_a_break`` is final: its exclusion of the records is written in this transaction."""
    permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
    workflow.check_manual_reason(reason)
    with transaction.atomic():
        case = _locked_case(tenant, case_id)
        before = _snapshot(case)
        workflow.check_transition(case, CaseStatus.RESOLVED)
        _mark_resolved(case, reason=reason, note=note, by=actor.display)
        return _save(
            case,
            tenant=tenant,
            actor=actor,
            action="case.resolved",
            before=before,
            extra_after={"note": note},
            apply_decision=True,
        )


def _mark_resolved(case, *, reason: str, note: str, by: str) -> None:
    case.status, case.resolution_reason, case.resolution_note = CaseStatus.RESOLVED, reason, note
    case.resolved_at, case.resolved_by = timezone.now(), by[:200]


def _check_decision(case, *, tenant, actor, reason: str, note: str = "") -> None:
    """At request time: can the records carry this final decision? (The maker learns now, not the checker.)"""
    if reason in workflow.FINAL_REASONS:
        decisions.registered().check(decisions.decision_of(case, tenant=tenant, actor=actor, reason=reason))


def _apply_decision(case, *, tenant, actor) -> dict:
    """A resolved case's final decision becomes an outcome of its records (an exclusion or a manual
    match with the case id) in the caller's transaction. Returns what to add to the audit event:
    the declared effect, and for a final decision what reconciliation wrote."""
    effect = {"effect": workflow.effect_of(case.resolution_reason)}
    if case.resolution_reason not in workflow.FINAL_REASONS:
        return effect
    decision = decisions.decision_of(
        case, tenant=tenant, actor=actor, reason=case.resolution_reason, note=case.resolution_note
    )
    return effect | {"records": decisions.registered().apply(decision)}


def _mark_reopened(case, *, tenant) -> None:
    now = timezone.now()
    case.status = CaseStatus.ASSIGNED if case.assignee_id else CaseStatus.OPEN
    case.resolution_reason = case.resolution_note = case.resolved_by = ""
    case.resolved_at, case.reopen_count, case.opened_at = None, case.reopen_count + 1, now
    case.sla_due_at = sla.sla_due_at(tenant=tenant, priority=case.priority, opened_at=now)
    case.sla_breached_at = None


def case_reopen(*, tenant, actor, case_id: int, note: str = "") -> Case:
    """Reopen a case resolved with an expected-to-clear reason. A final decision (its records are
    excluded or force-matched) is undone only through a four-eyes request (case_request_undo)."""
    with transaction.atomic():
        permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
        case = _locked_case(tenant, case_id)
        before = _snapshot(case)
        workflow.check_transition(case, CaseStatus.OPEN)
        if case.resolution_reason in workflow.FINAL_REASONS:
            raise ApplicationError(
                f"Case {case.pk} was resolved {case.resolution_reason}: its records are out of the open "
                "items. Undoing that is a decision too: request it (undo_decision) for an approver.",
                code="undo_needs_approval",
                extra={"case_id": case.pk, "resolution_reason": case.resolution_reason},
                status=409,
            )
        _mark_reopened(case, tenant=tenant)
        return _save(
            case,
            tenant=tenant,
            actor=actor,
            action="case.reopened",
            before=before,
            extra_after={"note": note},
        )


def case_transition(
    *, tenant, actor, user, case_id: int, to_status: str, reason: str = "", note: str = "", assignee=None
) -> Case:
    """One entrance for "move this case to status X" (API, admin, CLI); dispatches to the verbs above."""
    if to_status == CaseStatus.ASSIGNED:
        if assignee is None and user is None:
            raise ApplicationError(
                "An API key acts as itself, not as a person: assign the case to a user "
                "(POST .../assign with assignee_id).",
                code="not_a_person",
                status=403,
            )
        return case_assign(tenant=tenant, actor=actor, case_id=case_id, assignee=assignee or user)
    if to_status == CaseStatus.INVESTIGATING:
        return case_start_investigating(tenant=tenant, actor=actor, user=user, case_id=case_id)
    if to_status == CaseStatus.RESOLVED:
        return case_resolve(tenant=tenant, actor=actor, case_id=case_id, reason=reason, note=note)
    if to_status == CaseStatus.OPEN:
        current = Case.objects.filter(tenant=tenant, pk=case_id).values_list("status", flat=True).first()
        if current == CaseStatus.RESOLVED:
            return case_reopen(tenant=tenant, actor=actor, case_id=case_id, note=note)
        return case_assign(tenant=tenant, actor=actor, case_id=case_id, assignee=None)
    if to_status == CaseStatus.PENDING_APPROVAL:
        raise ApplicationError(
            "A case goes to pending_approval by requesting a write-off or force-match.",
            code="use_resolution_request",
        )
    raise ApplicationError(
        f"Unknown status '{to_status}'.", code="unknown_status", extra={"allowed": CaseStatus.values}
    )


def case_set_priority(*, tenant, actor, case_id: int, priority: str) -> Case:
    """Change the priority; the SLA due time is recomputed from the start of the open period."""
    permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
    if priority not in Priority.values:
        raise ApplicationError(
            f"Unknown priority '{priority}'.", code="unknown_priority", extra={"allowed": Priority.values}
        )
    with transaction.atomic():
        case = _locked_case(tenant, case_id)
        if case.status == CaseStatus.RESOLVED:
            raise ApplicationError("A resolved case has no SLA to change.", code="case_resolved", status=409)
        before = _snapshot(case)
        case.priority = priority
        case.sla_due_at = sla.sla_due_at(tenant=tenant, priority=priority, opened_at=case.opened_at)
        if case.sla_due_at > timezone.now():
            case.sla_breached_at = None
        return _save(case, tenant=tenant, actor=actor, action="case.priority_set", before=before)


def case_set_root_cause(*, tenant, actor, case_id: int, root_cause_id: int | None) -> Case:
    with transaction.atomic():
        permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
        case = _locked_case(tenant, case_id)
        before = _snapshot(case)
        if root_cause_id is not None:
            cause = RootCauseCategory.objects.filter(tenant=tenant, pk=root_cause_id, is_active=True).first()
            if cause is None:
                raise ApplicationError(
                    f"No active root cause {root_cause_id} in this tenant.",
                    code="root_cause_not_found",
                    status=404,
                )
        case.root_cause_id = root_cause_id
        return _save(case, tenant=tenant, actor=actor, action="case.root_cause_set", before=before)


def case_comment_add(*, tenant, actor, user, case_id: int, body: str) -> CaseComment:
    permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
    body = (body or "").strip()
    if not body:
        raise ApplicationError("A comment needs some text.", code="empty_comment")
    with transaction.atomic():
        case = _locked_case(tenant, case_id)
        comment = CaseComment(tenant=tenant, case=case, author=user, author_display=actor.display, body=body)
        comment.full_clean(exclude=["tenant", "case", "author"])
        comment.save()
        _audit_case(
            tenant, actor, "case.commented", case.pk, None, {"comment_id": comment.pk, "body": body[:2000]}
        )
    return comment


# --- Four-eyes: write-offs and force-matches ------------------------------------------------------

REASON_OF_KIND = {
    ApprovalKind.WRITE_OFF: ResolutionReason.WRITTEN_OFF,
    ApprovalKind.FORCE_MATCH: ResolutionReason.FORCE_MATCHED,
}


def approval_threshold_for(*, tenant, currency: str) -> Decimal | None:
    return (
        ApprovalThreshold.objects.filter(tenant=tenant, currency=currency)
        .values_list("amount", flat=True)
        .first()
    )


def _approval_request_create(tenant, case, kind, amount, threshold, note, user, actor) -> ApprovalRequest:
    """A pending request for a second person (maker: ``actor``), from the case's current status."""
    approval = ApprovalRequest(
        tenant=tenant,
        case=case,
        kind=kind,
        amount=amount,
        currency=case.currency,
        threshold=threshold,
        note=note,
        from_status=case.status,
        requested_by=user,
        requested_by_principal=_principal(actor),
        requested_by_display=actor.display,
    )
    approval.full_clean(exclude=["tenant", "case", "requested_by"])
    approval.save()
    return approval


def case_request_resolution(*, tenant, actor, user, case_id: int, kind: str, note: str) -> dict:
    """Write off or force-match a case: at or below the tenant's threshold for its currency it is
    resolved at once; above it (or with no threshold for the currency, or no amount) it waits for
    an approver. Returns {"case": Case, "approval": ApprovalRequest | None}."""
    permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
    if kind not in ApprovalKind.values:
        raise ApplicationError(
            f"Unknown request '{kind}'.", code="unknown_request_kind", extra={"allowed": ApprovalKind.values}
        )
    note = (note or "").strip()
    if not note:
        raise ApplicationError(
            "Say why (the note is what the approver and the auditor read).", code="note_required"
        )
    if kind == ApprovalKind.UNDO_DECISION:
        return case_request_undo(tenant=tenant, actor=actor, user=user, case_id=case_id, note=note)
    with transaction.atomic():
        case = _locked_case(tenant, case_id)
        before = _snapshot(case)
        workflow.check_transition(case, CaseStatus.PENDING_APPROVAL)
        _check_decision(case, tenant=tenant, actor=actor, reason=REASON_OF_KIND[kind])
        amount = abs(case.amount_at_stake) if case.amount_at_stake is not None else None
        threshold = approval_threshold_for(tenant=tenant, currency=case.currency)
        if amount is not None and threshold is not None and amount <= threshold:
            _mark_resolved(case, reason=REASON_OF_KIND[kind], note=note, by=actor.display)
            _save(
                case,
                tenant=tenant,
                actor=actor,
                action="case.resolved",
                before=before,
                extra_after={"kind": kind, "four_eyes": False, "threshold": threshold, "note": note},
                apply_decision=True,
            )
            return {"case": case, "approval": None}
        approval = _approval_request_create(tenant, case, kind, amount, threshold, note, user, actor)
        case.status = CaseStatus.PENDING_APPROVAL
        _save(
            case,
            tenant=tenant,
            actor=actor,
            action="case.approval_requested",
            before=before,
            extra_after={
                "approval_id": approval.pk,
                "kind": kind,
                "amount": amount,
                "threshold": threshold,
                "note": note,
            },
        )
        return {"case": case, "approval": approval}


def _locked_pending_approval(tenant, *, approval_id=None, case_id=None) -> ApprovalRequest:
    lookup = {"pk": approval_id} if approval_id is not None else {"case_id": case_id}
    approval = (
        ApprovalRequest.objects.select_for_update()
        .filter(tenant=tenant, status=ApprovalStatus.PENDING, **lookup)
        .first()
    )
    if approval is None:
        raise ApplicationError("No pending approval request here.", code="approval_not_found", status=404)
    return approval


def approval_decide(
    *,
    tenant,
    actor,
    user,
    approve: bool,
    approval_id: int | None = None,
    case_id: int | None = None,
    note: str = "",
) -> ApprovalRequest:
    """The checker approves (case resolved written_off / force_matched) or rejects (case back).

    Enforced here so the admin, the API and the CLI all obey it: the checker is a person with the
    approver role in this tenant, and never the maker.
    """
    with transaction.atomic():
        permissions.require(tenant=tenant, actor=actor, area="case", verb="approve")
        approval = _locked_pending_approval(tenant, approval_id=approval_id, case_id=case_id)
        role = role_of(user, tenant) if user is not None else None
        if role not in APPROVER_ROLES:
            raise ApplicationError(
                "Only a person with the approver role can decide a write-off or force-match.",
                code="approver_role_required",
                extra={"role": role},
                status=403,
            )
        if _principal(actor) == approval.requested_by_principal:
            raise ApplicationError(
                "Four-eyes: the person who requested this cannot also decide it.",
                code="maker_cannot_check",
                status=403,
            )
        case = _locked_case(tenant, approval.case_id)
        before = _snapshot(case)
        approval.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        approval.decided_by, approval.decided_by_principal = user, _principal(actor)
        approval.decided_by_display, approval.decided_at, approval.decision_note = (
            actor.display,
            timezone.now(),
            note,
        )
        approval.save()
        decision = {
            "approval_id": approval.pk,
            "kind": approval.kind,
            "maker": approval.requested_by_display,
            "checker": actor.display,
            "note": note,
        }
        if approve and approval.kind == ApprovalKind.UNDO_DECISION:
            _undo_decision(case, approval, tenant=tenant, actor=actor, before=before, decision=decision)
        elif approve:
            _mark_resolved(
                case,
                reason=REASON_OF_KIND[approval.kind],
                note=approval.note,
                by=f"{approval.requested_by_display}, approved by {actor.display}",
            )
            _save(
                case,
                tenant=tenant,
                actor=actor,
                action="case.approval_approved",
                before=before,
                extra_after=decision,
                apply_decision=True,
            )
        else:
            _back_from_pending(case, approval)
            _save(
                case,
                tenant=tenant,
                actor=actor,
                action="case.approval_rejected",
                before=before,
                extra_after=decision,
            )
    return approval


def case_request_undo(*, tenant, actor, user, case_id: int, note: str) -> dict:
    """Ask to undo a final decision (written off, force-matched, not a break): always four-eyes,
    whatever the amount, since it puts the records back into the open items. The case stays resolved
    (and its records decided) until an approver other than the maker approves; then the exclusion or
    manual match is undone and the case reopens, in one transaction (approval_decide)."""
    permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
    note = (note or "").strip()
    if not note:
        raise ApplicationError("Say why the decision should be undone.", code="note_required")
    with transaction.atomic():
        case = _locked_case(tenant, case_id)
        if case.status != CaseStatus.RESOLVED or case.resolution_reason not in workflow.FINAL_REASONS:
            raise ApplicationError(
                f"Case {case.pk} is {case.status} {case.resolution_reason or ''}".rstrip()
                + f"; only a final decision ({', '.join(sorted(workflow.FINAL_REASONS))}) is undone by "
                "request. A case resolved otherwise is reopened directly.",
                code="not_a_final_decision",
                extra={
                    "case_id": case.pk,
                    "status": case.status,
                    "resolution_reason": case.resolution_reason,
                },
                status=409,
            )
        if ApprovalRequest.objects.filter(case=case, status=ApprovalStatus.PENDING).exists():
            raise ApplicationError("A request is pending on this case.", code="approval_pending", status=409)
        amount = abs(case.amount_at_stake) if case.amount_at_stake is not None else None
        approval = _approval_request_create(
            tenant, case, ApprovalKind.UNDO_DECISION, amount, None, note, user, actor
        )
        _audit_case(
            tenant,
            actor,
            "case.undo_requested",
            case.pk,
            _snapshot(case),
            {"approval_id": approval.pk, "resolution_reason": case.resolution_reason, "note": note},
        )
        return {"case": case, "approval": approval}


def _undo_decision(case, approval, *, tenant, actor, before: dict, decision: dict) -> None:
    """The approved undo: the records' exclusion or manual match is undone and the case reopens, in
    the approval's transaction, each audited (the records' side by reconciliation)."""
    undone = decisions.registered().undo(
        decisions.decision_of(
            case, tenant=tenant, actor=actor, reason=case.resolution_reason, note=approval.note
        )
    )
    undone = {
        "undone": case.resolution_reason,
        "effect": workflow.effect_of(case.resolution_reason),
        "records": undone,
    }
    _mark_reopened(case, tenant=tenant)
    _save(
        case,
        tenant=tenant,
        actor=actor,
        action="case.approval_approved",
        before=before,
        extra_after=decision | undone,
    )


def approval_withdraw(*, tenant, actor, case_id: int, note: str = "") -> ApprovalRequest:
    """The maker (or anyone on the desk) takes a pending request back; the case returns to where it was."""
    with transaction.atomic():
        permissions.require(tenant=tenant, actor=actor, area="case", verb="work")
        approval = _locked_pending_approval(tenant, case_id=case_id)
        case = _locked_case(tenant, case_id)
        before = _snapshot(case)
        _close_approval(approval, actor=actor, status=ApprovalStatus.WITHDRAWN, note=note)
        _back_from_pending(case, approval)
        _save(
            case,
            tenant=tenant,
            actor=actor,
            action="case.approval_withdrawn",
            before=before,
            extra_after={"approval_id": approval.pk, "note": note},
        )
    return approval


def _close_approval(approval, *, actor, status: str, note: str) -> None:
    approval.status, approval.decided_at, approval.decision_note = status, timezone.now(), note
    approval.decided_by_principal, approval.decided_by_display = _principal(actor), actor.display
    if approval.decided_by_principal == approval.requested_by_principal:
        # Withdrawing your own request is not a check; keep the maker≠checker constraint meaningful.
        approval.decided_by_principal = f"withdrawn-by:{approval.decided_by_principal}"
    approval.save()


def _back_from_pending(case, approval) -> None:
    status = approval.from_status
    if status == CaseStatus.ASSIGNED and case.assignee_id is None:
        status = CaseStatus.OPEN
    case.status = status


# --- Desk configuration (admin): thresholds, root causes, the SLA webhook — audited -------------


def approval_threshold_set(
    *, tenant, actor, currency: str, amount: Decimal | None
) -> ApprovalThreshold | None:
    """Set (or with amount None, remove) the four-eyes threshold for a currency."""
    currency = (currency or "").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ApplicationError("Currency must be an ISO 4217 code.", code="invalid_currency")
    with transaction.atomic():
        current = (
            ApprovalThreshold.objects.select_for_update().filter(tenant=tenant, currency=currency).first()
        )
        permissions.require(
            tenant=tenant,
            actor=actor,
            area="approval_threshold",
            verb="delete" if amount is None else "change" if current else "add",
        )
        before = {"currency": currency, "amount": current.amount} if current else None
        if amount is None:
            if current is not None:
                current.delete()
            result = None
        else:
            result = current or ApprovalThreshold(tenant=tenant, currency=currency)
            result.amount = Decimal(amount)
            result.full_clean(exclude=["tenant"])
            result.save()
        audit.record(
            tenant=tenant,
            actor=actor,
            action="approval_threshold.set",
            object_type=ApprovalThreshold._meta.label_lower,
            object_id=currency,
            before=before,
            after={"currency": currency, "amount": amount} if amount is not None else None,
        )
    return result


def root_cause_save(
    *, tenant, actor, code: str, name: str, description: str = "", is_active: bool = True
) -> RootCauseCategory:
    with transaction.atomic():
        cause = RootCauseCategory.objects.select_for_update().filter(tenant=tenant, code=code).first()
        permissions.require(tenant=tenant, actor=actor, area="root_cause", verb="change" if cause else "add")
        before = None if cause is None else {"name": cause.name, "is_active": cause.is_active}
        cause = cause or RootCauseCategory(tenant=tenant, code=code)
        cause.name, cause.description, cause.is_active = name, description, is_active
        cause.full_clean(exclude=["tenant"])
        cause.save()
        audit.record(
            tenant=tenant,
            actor=actor,
            action="root_cause.saved",
            obj=cause,
            before=before,
            after={"code": code, "name": name, "is_active": is_active},
        )
    return cause


def sla_webhook_set(*, tenant, actor, url: str, secret: str, is_active: bool = True) -> SlaWebhook:
    with transaction.atomic():
        hook = SlaWebhook.objects.select_for_update().filter(tenant=tenant).first()
        permissions.require(tenant=tenant, actor=actor, area="sla_webhook", verb="change" if hook else "add")
        before = None if hook is None else {"url": hook.url, "is_active": hook.is_active}
        hook = hook or SlaWebhook(tenant=tenant)
        hook.url, hook.secret, hook.is_active = url, secret, is_active
        hook.full_clean(exclude=["tenant"])
        hook.save()
        # The secret is never written to the audit trail, only that it changed.
        audit.record(
            tenant=tenant,
            actor=actor,
            action="sla_webhook.set",
            obj=hook,
            before=before,
            after={"url": url, "is_active": is_active, "secret_changed": True},
        )
    return hook


# --- SLA breaches: flagged by a beat task, announced by a signed webhook --------------------------

_FLAG_SQL = """
UPDATE exceptions_case SET sla_breached_at = %(now)s
WHERE status <> 'resolved' AND sla_due_at < %(now)s AND sla_breached_at IS NULL
RETURNING id, tenant_id, priority, sla_due_at, break_type, reference, amount_at_stake, currency
"""


def cases_flag_sla_breaches(*, now=None) -> int:
    """Flag every unresolved case past its SLA due time, once (one UPDATE for all tenants).

    Per breach: an audit event on the case, a log event, ``exception_sla_breaches_total{priority}``;
    per tenant with an active webhook: one signed POST listing its new breaches (outbox row, sent
    after commit, retried with backoff). Idempotent: a flagged case is not flagged again until its
    SLA restarts (reopen, priority change).
    """
    from exceptions import tasks  # tasks import services; keep the arrow one way at import time

    now = now or timezone.now()
    actor = audit.Actor.for_system("sla-sweep")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_FLAG_SQL, {"now": now})
            rows = cursor.fetchall()
        by_tenant: dict[int, list[dict]] = {}
        for case_id, tenant_id, priority, due, btype, reference, amount, currency in rows:
            item = {
                "case_id": case_id,
                "priority": priority,
                "sla_due_at": due.isoformat(),
                "break_type": btype,
                "reference": reference,
                "currency": currency,
                "amount_at_stake": None if amount is None else str(amount),
            }
            by_tenant.setdefault(tenant_id, []).append(item)
        tenants = Tenant.objects.in_bulk(list(by_tenant))
        hooks = {
            h.tenant_id: h for h in SlaWebhook.objects.filter(tenant_id__in=list(by_tenant), is_active=True)
        }
        deliveries = []
        for tenant_id, items in by_tenant.items():
            tenant = tenants[tenant_id]
            for item in items:
                _audit_case(tenant, actor, "case.sla_breached", item["case_id"], None, item)
                log.warning("case_sla_breached", tenant=tenant.slug, **item)
            hook = hooks.get(tenant_id)
            if hook is not None:
                payload = {
                    "event": "exception.sla_breached",
                    "tenant": tenant.slug,
                    "flagged_at": now.isoformat(),
                    "cases": items,
                }
                deliveries.append(
                    WebhookDelivery.objects.create(
                        tenant=tenant, event=payload["event"], url=hook.url, payload=payload
                    )
                )
        for delivery in deliveries:
            # Backoff and attempts travel with the task, so the sweep's settings are the ones used.
            transaction.on_commit(
                lambda d=delivery.pk: tasks.deliver_webhook.delay(d, WEBHOOK_BACKOFF_S, WEBHOOK_MAX_ATTEMPTS)
            )
    for _, _, priority, *_ in rows:
        metrics.SLA_BREACHES.labels(priority=priority).inc()
    if rows:
        log.warning("sla_breaches_flagged", count=len(rows), tenants=len(by_tenant))
    return len(rows)


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>": the receiver recomputes it and rejects stale timestamps."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotDelivered(Exception):
    """A delivery attempt failed (network error or non-2xx); the task retries it with backoff."""


def webhook_deliver(*, delivery_id: int, final_attempt: bool) -> bool:
    """POST one outbox row once. True when delivered (or already delivered earlier: idempotent).

    The receiver dedupes by ``X-JF-Delivery``; a retried POST carries the same id and body.
    """
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return True
    hook = SlaWebhook.objects.filter(tenant_id=delivery.tenant_id).first()
    body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(timezone.now().timestamp()))
    headers = {
        "Content-Type": "application/json",
        "X-JF-Event": delivery.event,
        "X-JF-Delivery": str(delivery.pk),
        "X-JF-Timestamp": timestamp,
        "X-JF-Signature": webhook_signature(hook.secret if hook else "", timestamp, body),
    }
    status_code, error = None, ""
    try:
        response = requests.post(delivery.url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT_S)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    updates = {"attempts": models.F("attempts") + 1, "response_status": status_code, "last_error": error}
    if not error:
        updates.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=timezone.now())
    elif final_attempt:
        updates.update(status=WebhookDelivery.Status.FAILED)
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(**updates)
    outcome = "delivered" if not error else ("failed" if final_attempt else "retry")
    metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
    if error:
        (log.error if final_attempt else log.warning)(
            "webhook_delivery_failed" if final_attempt else "webhook_delivery_retry",
            delivery_id=delivery.pk,
            url=delivery.url,
            error=error,
            attempt=delivery.attempts + 1,
        )
        if not final_attempt:
            raise WebhookNotDelivered(error)
        delivery.refresh_from_db()
        signals.webhook_failed.send(sender=WebhookDelivery, delivery=delivery, error=error)
        return False
    log.info("webhook_delivered", delivery_id=delivery.pk, url=delivery.url, attempt=delivery.attempts + 1)
    return True


# --- For other apps: the desk's webhook outbox and a case for a failed delivery (reporting) -------


def webhook_enqueue(*, tenant, event: str, payload: dict) -> WebhookDelivery | None:
    """Queue a signed POST of ``payload`` to the tenant's webhook through the desk's outbox (the
    same signing, retries with backoff and delivery log as SLA breaches). None: no active webhook.
    Call inside the caller's transaction; the POST is enqueued after commit."""
    from exceptions import tasks  # tasks import services; keep the arrow one way at import time

    hook = SlaWebhook.objects.filter(tenant=tenant, is_active=True).first()
    if hook is None:
        return None
    delivery = WebhookDelivery.objects.create(tenant=tenant, event=event, url=hook.url, payload=payload)
    transaction.on_commit(
        lambda d=delivery.pk: tasks.deliver_webhook.delay(d, WEBHOOK_BACKOFF_S, WEBHOOK_MAX_ATTEMPTS)
    )
    return delivery


def case_open_for_failed_delivery(
    *,
    tenant,
    subscription_id: int,
    subscription_name: str,
    delivery_id: int,
    error: str,
    trace_id: str,
    actor,
) -> Case:
    """One case per failed report delivery, so the desk sees it next to the breaks. Idempotent.

    The case's "definition" is the subscription (id, name) and its "run" the delivery, the shape
    a run failure has (case_open_for_failed_run)."""
    fingerprint = fingerprint_of(0, [f"report_delivery:{delivery_id}"])
    failure = BreakInput(
        fingerprint=fingerprint,
        break_type=BreakType.DELIVERY_FAILED,
        record_ids=[],
        snapshot={
            "delivery": {"delivery_id": delivery_id, "subscription": subscription_name, "trace_id": trace_id}
        },
        differences={"error": error[:4000]},
        amount_at_stake=None,
        currency="",
        reference=f"report delivery {delivery_id}",
        account="",
        instrument="",
        rule="",
    )
    cases_sync_for_run(
        tenant=tenant,
        definition_id=subscription_id,
        definition_name=f"report subscription {subscription_name}",
        run_id=delivery_id,
        trace_id=trace_id,
        breaks=[failure],
        actor=actor,
    )
    log.error(
        "case_opened_for_failed_delivery", delivery_id=delivery_id, error=error[:500], run_trace_id=trace_id
    )
    return Case.objects.get(tenant_id=_tenant_id(tenant), fingerprint=fingerprint)
