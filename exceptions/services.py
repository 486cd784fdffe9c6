"""Writes of the exceptions app. Reconciliation opens, updates and resolves cases only through here.

Run-driven writes are set-based (one ``INSERT … ON CONFLICT … DO UPDATE`` per chunk of breaks, one
``UPDATE … RETURNING`` for resolutions): a run can produce tens of thousands of breaks. They are
idempotent per run id: a case remembers the last run that touched it, and a run never changes a case
that the same or a later run already touched, so a redelivered task changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from exceptions import metrics, sla
from exceptions.models import BreakType, Case, CaseStatus, ResolutionReason
from exceptions.types import BreakInput, fingerprint_of
from jfintech import audit
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger

log = get_logger(__name__)

CASE_OBJECT_TYPE = Case._meta.label_lower  # "exceptions.case": history is AuditEvent rows of this type
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
    SELECT c.fingerprint, c.status, c.break_type FROM exceptions_case c
    WHERE c.tenant_id = %(tenant)s AND c.fingerprint IN (SELECT fingerprint FROM b)
), up AS (
    INSERT INTO exceptions_case AS c (
        tenant_id, fingerprint, break_type, record_ids, snapshot, differences, amount_at_stake,
        currency, reference, account, instrument, definition_id, definition_name, rule,
        first_run_id, last_run_id, run_count, trace_id, status, resolution_reason, resolution_note,
        reopen_count, priority, sla_due_at, first_seen_at, last_seen_at, created_at, updated_at)
    SELECT %(tenant)s, b.fingerprint, b.break_type, coalesce(b.record_ids, '{}'), b.snapshot,
        b.differences, b.amount_at_stake, coalesce(b.currency, ''), coalesce(b.reference, ''),
        coalesce(b.account, ''), coalesce(b.instrument, ''), %(definition_id)s, %(definition_name)s,
        coalesce(b.rule, ''), %(run_id)s, %(run_id)s, 1, %(trace_id)s, 'open', '', '', 0,
        b.priority, b.sla_due_at, %(now)s, %(now)s, %(now)s, %(now)s
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
        reopen_count = c.reopen_count + (c.status = 'resolved')::int,
        priority = CASE WHEN c.status = 'resolved' THEN EXCLUDED.priority ELSE c.priority END,
        sla_due_at = CASE WHEN c.status = 'resolved' THEN EXCLUDED.sla_due_at ELSE c.sla_due_at END
    -- Idempotent per run: the same (redelivered) or an older run never touches the case again.
    WHERE c.last_run_id < EXCLUDED.last_run_id
    RETURNING c.id, c.fingerprint, c.status, c.break_type, c.amount_at_stake, c.currency,
              (c.xmax = 0) AS inserted
)
SELECT up.id, up.fingerprint, up.status, up.break_type, up.amount_at_stake, up.currency, up.inserted,
       prior.status AS prior_status, prior.break_type AS prior_break_type
FROM up LEFT JOIN prior USING (fingerprint)
"""


def _check_breaks(breaks: list[BreakInput]) -> None:
    valid_types = set(BreakType.values)
    bad = sorted({b.break_type for b in breaks} - valid_types)
    if bad:
        raise ApplicationError(
            f"Unknown break type(s): {', '.join(bad)}.", code="unknown_break_type",
            extra={"allowed": sorted(valid_types)},
        )  # fmt: skip
    seen = Counter(b.fingerprint for b in breaks)
    doubled = [fp for fp, n in seen.items() if n > 1]
    if doubled:
        # One case per fingerprint: two breaks with one fingerprint is a bug upstream; say so loudly.
        raise ApplicationError(
            f"{len(doubled)} fingerprint(s) appear more than once in one run's breaks.",
            code="duplicate_fingerprint", extra={"fingerprints": doubled[:20]},
        )  # fmt: skip


def cases_sync_for_run(*, tenant, definition_id: int, definition_name: str, run_id: int, trace_id: str,
                       breaks: list[BreakInput], actor, matched_fingerprints=()) -> dict:  # fmt: skip
    """Upsert one case per break's fingerprint; resolve ``matched_fingerprints`` as auto_matched.

    Returns {"opened", "reopened", "updated", "resolved"} (``opened`` counts new and reopened
    cases). Audit: one event per case opened, reopened, changed type or resolved, plus one summary
    event for the run; a plain "seen again" is on the case row (last_run_id, run_count).
    """
    _check_breaks(breaks)
    now = timezone.now()
    counts = {"opened": 0, "reopened": 0, "updated": 0, "resolved": 0}
    triage_cache: dict = {}
    with transaction.atomic():
        for start in range(0, len(breaks), SYNC_CHUNK):
            rows = []
            for b in breaks[start : start + SYNC_CHUNK]:
                row = asdict(b)
                key = (b.break_type, b.amount_at_stake)
                if key not in triage_cache:  # the calendar walk once per distinct (type, amount)
                    triage_cache[key] = _triage_defaults(
                        tenant=tenant, break_type=b.break_type, amount_at_stake=b.amount_at_stake, now=now
                    )
                row["priority"], row["sla_due_at"] = triage_cache[key]
                rows.append(row)
            params = {
                "breaks": json.dumps(rows, cls=_Encoder), "tenant": _tenant_id(tenant),
                "definition_id": definition_id, "definition_name": definition_name, "run_id": run_id,
                "trace_id": trace_id or "", "now": now,
            }  # fmt: skip
            with connection.cursor() as cursor:
                cursor.execute(_UPSERT_SQL, params)
                changed = cursor.fetchall()
            for case_id, fp, status, btype, amount, currency, inserted, prior_status, prior_type in changed:
                after = {"fingerprint": fp, "status": status, "break_type": btype, "run_id": run_id,
                         "amount_at_stake": amount, "currency": currency}  # fmt: skip
                if inserted:
                    counts["opened"] += 1
                    _audit_case(tenant, actor, "case.opened", case_id, None, after)
                elif prior_status == CaseStatus.RESOLVED:
                    counts["opened"] += 1
                    counts["reopened"] += 1
                    _audit_case(tenant, actor, "case.reopened", case_id, {"status": prior_status}, after)
                else:
                    counts["updated"] += 1
                    if prior_type != btype:
                        _audit_case(tenant, actor, "case.break_type_changed", case_id,
                                    {"break_type": prior_type}, after)  # fmt: skip
        if matched_fingerprints:
            counts["resolved"] = cases_resolve_matched(
                tenant=tenant, definition_id=definition_id, run_id=run_id,
                matched_fingerprints=matched_fingerprints, actor=actor,
            )  # fmt: skip
        if any(counts.values()):
            audit.record(
                tenant=tenant, actor=actor, action="cases.synced_for_run",
                object_type="exceptions.run_sync", object_id=f"{definition_id}:{run_id}",
                after={**counts, "definition_id": definition_id, "run_id": run_id, "breaks": len(breaks)},
            )  # fmt: skip
    _count_transition(CaseStatus.OPEN, counts["opened"])
    log.info("cases_synced_for_run", definition_id=definition_id, **{"recon.run_id": run_id}, **counts)
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
    resolution_note = %(note)s, resolved_at = %(now)s, updated_at = %(now)s, last_run_id = %(run_id)s
FROM target WHERE c.id = target.id
RETURNING c.id, c.fingerprint, target.status
"""


def cases_resolve_matched(*, tenant, definition_id: int, run_id: int, matched_fingerprints: list[str],
                          actor) -> int:  # fmt: skip
    """Resolve (auto_matched) every unresolved case of the definition whose records run ``run_id`` matched.

    Idempotent: a second call finds them resolved and changes nothing. Returns how many it resolved.
    """
    fingerprints = sorted(set(matched_fingerprints))
    if not fingerprints:
        return 0
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_RESOLVE_SQL, {
                "tenant": _tenant_id(tenant), "definition_id": definition_id, "fingerprints": fingerprints,
                "run_id": run_id, "now": now, "note": f"records matched in run {run_id}",
            })  # fmt: skip
            resolved = cursor.fetchall()
        for case_id, fp, prior_status in resolved:
            _audit_case(tenant, actor, "case.resolved", case_id, {"status": prior_status},
                        {"status": "resolved", "resolution_reason": ResolutionReason.AUTO_MATCHED,
                         "run_id": run_id, "fingerprint": fp})  # fmt: skip
        _after_auto_resolve(tenant=tenant, case_ids=[r[0] for r in resolved], actor=actor)
    _count_transition(CaseStatus.RESOLVED, len(resolved))
    if resolved:
        log.info("cases_auto_matched", definition_id=definition_id, resolved=len(resolved),
                 **{"recon.run_id": run_id})  # fmt: skip
    return len(resolved)


def _after_auto_resolve(*, tenant, case_ids: list[int], actor) -> None:
    """Hook for the workflow: pending approvals of auto-resolved cases are withdrawn (step 2)."""


def case_open_for_failed_run(*, tenant, definition_id: int, definition_name: str, run_id: int,
                             trace_id: str, error: str, actor) -> Case:  # fmt: skip
    """One case per failed run, so the analysts see the failure next to the breaks. Idempotent."""
    fingerprint = fingerprint_of(definition_id, [f"run_failed:{run_id}"])
    failure = BreakInput(
        fingerprint=fingerprint, break_type=BreakType.RUN_FAILED, record_ids=[],
        snapshot={"run": {"run_id": run_id, "definition": definition_name, "trace_id": trace_id}},
        differences={"error": error[:4000]}, amount_at_stake=None, currency="", reference=f"run {run_id}",
        account="", instrument="", rule="",
    )  # fmt: skip
    cases_sync_for_run(tenant=tenant, definition_id=definition_id, definition_name=definition_name,
                       run_id=run_id, trace_id=trace_id, breaks=[failure], actor=actor)  # fmt: skip
    log.error("case_opened_for_failed_run", definition_id=definition_id, error=error[:500],
              run_trace_id=trace_id, **{"recon.run_id": run_id})  # fmt: skip
    return Case.objects.get(tenant_id=_tenant_id(tenant), fingerprint=fingerprint)


def _audit_case(tenant, actor, action: str, case_id: int, before, after) -> None:
    audit.record(tenant=tenant, actor=actor, action=action, object_type=CASE_OBJECT_TYPE,
                 object_id=case_id, before=before, after=after)  # fmt: skip


def _count_transition(to_status: str, n: int) -> None:
    if n:
        metrics.CASE_TRANSITIONS.labels(to_status=str(to_status)).inc(n)
