"""Decisions on break cases as outcomes of their records (docs/exceptions.md, "Decisions are data").

Registered with ``exceptions.decisions`` when the app is ready (reconciliation.apps), and called by
the case services inside the decision's own transaction:

- **force-matched** → an active manual match of the case's records carrying the case id
  (``manual.match_create_manual``: the one-active-match index still holds; a record matched
  meanwhile refuses the decision with 409 ``record_already_matched``). The records are matched, so
  later runs' scopes leave them out like any matched record.
- **written off / not a break** → a ``DecisionExclusion`` per record with the case id and the
  reason. Later runs still freeze them in scope and the engine excludes them first
  (``exclude_decided``, reason ``decision <reason> case <id>``), so each run's conservation counts
  them as excluded.
- **undo** (approved by a second person) → the match becomes ``undone`` / the exclusions inactive,
  and the next run sees the records as open items again.

Every write is audited here, next to the case's own events (exceptions writes those).
"""

from __future__ import annotations

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from exceptions.decisions import Decision
from exceptions.workflow import RecordEffect
from jfintech import audit
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from reconciliation.matching.models import DecisionExclusion
from reconciliation.runs.models import Definition, Match, MatchStatus, Side

log = get_logger(__name__)

EXCLUSION_REASON_PREFIX = "decision "  # reconciliation_run_exclusion.reason: "decision written_off case 36"

_RECORDS = """
SELECT r.id, r.business_date, ds.side, r.status,
       EXISTS (SELECT 1 FROM reconciliation_match_item mi
               WHERE mi.tenant_id = r.tenant_id AND mi.definition_id = ds.definition_id
                 AND mi.record_id = r.id AND mi.business_date = r.business_date AND mi.is_active)
FROM reconciliation_record r
JOIN reconciliation_definitionsource ds ON ds.source_id = r.source_id AND ds.definition_id = %(definition)s
WHERE r.tenant_id = %(tenant)s AND r.id = ANY(%(ids)s::bigint[])
"""


def _definition(decision: Decision) -> Definition | None:
    return Definition.objects.filter(tenant_id=decision.tenant.pk, pk=decision.definition_id).first()


def _records(decision: Decision) -> list[tuple]:
    """The case's records as reconciliation holds them now; refuses a decision they cannot carry."""
    if decision.break_type in ("position_break", "run_failed") or not decision.record_ids:
        raise ApplicationError(
            f"A {decision.break_type} case holds no open items to {decision.reason.replace('_', ' ')}: "
            "a position break is an aggregate of positions and trades, a failed run is rerun. Fix it at "
            "source (fixed_at_source) or rerun (run_rerun).",
            code="no_records_to_decide",
            status=409,
            extra={"case_id": decision.case_id, "break_type": decision.break_type},
        )
    ids = sorted(set(decision.record_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORDS, {"definition": decision.definition_id, "tenant": decision.tenant.pk, "ids": ids}
        )
        rows = cursor.fetchall()
    unknown = sorted(set(ids) - {row[0] for row in rows})
    if unknown:
        raise ApplicationError(
            "Records of this case are not among its definition's sources.",
            code="records_not_found",
            status=404,
            extra={"case_id": decision.case_id, "record_ids": unknown[:50]},
        )
    inactive = [row[0] for row in rows if row[3] != "active"]
    if inactive:
        # Decided on what the analyst saw: a changed record is a new fact to look at, not covered.
        raise ApplicationError(
            "Records of this case were amended or reversed since it was opened; look at it again.",
            code="records_not_active",
            status=409,
            extra={"case_id": decision.case_id, "record_ids": inactive[:50]},
        )
    matched = [row[0] for row in rows if row[4]]
    if matched:
        raise ApplicationError(
            "Records of this case are in an active match already.",
            code="record_already_matched",
            status=409,
            extra={"case_id": decision.case_id, "record_ids": matched[:50]},
        )
    if decision.effect == RecordEffect.MATCH and {row[2] for row in rows} != {Side.LEFT, Side.RIGHT}:
        raise ApplicationError(
            "A force-match needs records of both sides; this case has one side only. Write it off, or "
            "resolve it when its counterpart arrives.",
            code="invalid_sides",
            status=400,
            extra={"case_id": decision.case_id},
        )
    return rows


class RecordEffects:
    """exceptions.decisions.RecordEffects, carried out on reconciliation's tables."""

    def check(self, decision: Decision) -> None:
        if _definition(decision) is not None:
            _records(decision)

    def apply(self, decision: Decision) -> dict:
        if _definition(decision) is None:
            # Not a reconciliation case (opened by a simulated run: the demo desk, the desk's own
            # tests): there are no records to take out. Said in the case's history, and logged.
            log.warning(
                "decision_without_records",
                case_id=decision.case_id,
                definition_id=decision.definition_id,
                reason=decision.reason,
            )
            return {
                "records": [],
                "why": f"definition {decision.definition_id} is not a reconciliation definition",
            }
        rows = _records(decision)
        if decision.effect == RecordEffect.MATCH:
            return self._force_match(decision)
        return self._exclude(decision, rows)

    def undo(self, decision: Decision) -> dict:
        if decision.effect == RecordEffect.MATCH:
            return self._unmatch(decision)
        now = timezone.now()
        rows = list(
            DecisionExclusion.objects.select_for_update()
            .filter(tenant_id=decision.tenant.pk, case_id=decision.case_id, is_active=True)
            .values_list("record_id", flat=True)
        )
        DecisionExclusion.objects.filter(
            tenant_id=decision.tenant.pk, case_id=decision.case_id, is_active=True
        ).update(is_active=False, undone_at=now, undone_by=decision.actor.display[:200])
        audit.record(
            tenant=decision.tenant,
            actor=decision.actor,
            action="recon_decision.exclusion_undone",
            object_type=DecisionExclusion._meta.label_lower,
            object_id=decision.case_id,
            before={"record_ids": rows, "reason": decision.reason},
            after={"record_ids": [], "note": decision.note},
        )
        return {"records_reopened": sorted(rows)}

    def _exclude(self, decision: Decision, rows: list[tuple]) -> dict:
        exclusions = [
            DecisionExclusion(
                tenant_id=decision.tenant.pk,
                definition_id=decision.definition_id,
                record_id=record_id,
                business_date=business_date,
                side=side,
                case_id=decision.case_id,
                reason=decision.reason,
                note=decision.note,
                decided_by=decision.actor.display[:200],
            )
            for record_id, business_date, side, _status, _matched in rows
        ]
        try:
            with transaction.atomic():  # a savepoint: the IntegrityError must not poison the caller
                DecisionExclusion.objects.bulk_create(exclusions)
        except IntegrityError:
            raise ApplicationError(
                "A record of this case is excluded by another case's decision already.",
                code="record_already_decided",
                status=409,
                extra={"case_id": decision.case_id},
            ) from None
        record_ids = sorted(e.record_id for e in exclusions)
        audit.record(
            tenant=decision.tenant,
            actor=decision.actor,
            action="recon_decision.excluded",
            object_type=DecisionExclusion._meta.label_lower,
            object_id=decision.case_id,
            after={
                "record_ids": record_ids,
                "reason": decision.reason,
                "definition_id": decision.definition_id,
                "note": decision.note,
            },
        )
        log.info(
            "recon_decision_excluded",
            case_id=decision.case_id,
            records=len(record_ids),
            reason=decision.reason,
        )
        return {"records": record_ids, "exclusion": decision.reason}

    def _force_match(self, decision: Decision) -> dict:
        from reconciliation.matching import manual  # manual imports exceptions.services: load lazily

        match = manual.match_create_manual(
            tenant=decision.tenant,
            actor=decision.actor,
            definition_id=decision.definition_id,
            record_ids=list(decision.record_ids),
            reason=f"force-matched by case {decision.case_id}: {decision.note}",
            case_id=decision.case_id,
        )
        return {"records": sorted(set(decision.record_ids)), "match_id": match.pk}

    def _unmatch(self, decision: Decision) -> dict:
        from reconciliation.matching import manual

        match = (
            Match.objects.filter(
                tenant_id=decision.tenant.pk, case_id=decision.case_id, status=MatchStatus.ACTIVE
            )
            .order_by("-pk")
            .first()
        )
        if match is None:
            return {"records_reopened": [], "why": "no active match of this case"}
        manual.match_undo(
            tenant=decision.tenant,
            actor=decision.actor,
            match_id=match.pk,
            reason=f"decision undone: {decision.note}",
        )
        return {"records_reopened": sorted(set(decision.record_ids)), "match_id": match.pk}


def any_active(*, tenant_id: int, definition_id: int) -> bool:
    return DecisionExclusion.objects.filter(
        tenant_id=tenant_id, definition_id=definition_id, is_active=True
    ).exists()


def exclude_decided(base: dict) -> int:
    """Engine step, right after the pools are loaded: the records of the run's scope that a decision
    excluded go to ``_excl`` with the decision's reason and case id, before any pass sees them.
    Returns how many (the caller rebuilds the pools without them)."""
    if not any_active(tenant_id=base["tenant"], definition_id=base["definition"]):
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO _excl (id, business_date, side, reason)
            SELECT s.id, s.business_date, s.side, %(prefix)s || d.reason || ' case ' || d.case_id
            FROM reconciliation_decision_exclusion d
            JOIN (SELECT id, business_date, 'left' AS side FROM _l
                  UNION ALL SELECT id, business_date, 'right' FROM _r) s
              ON s.id = d.record_id AND s.business_date = d.business_date
            WHERE d.tenant_id = %(tenant)s AND d.definition_id = %(definition)s AND d.is_active
            """,
            base | {"prefix": EXCLUSION_REASON_PREFIX},
        )
        return cursor.rowcount


def decided_outcomes(run) -> dict:
    """For the run's conservation: its records excluded by a decision, per reason (in scope, part of
    ``excluded``), and the records of its window held by a force-match decision (matched before the
    run, so outside its scope like every matched record)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT split_part(reason, ' ', 2), count(*) FROM reconciliation_run_exclusion
            WHERE run_id = %(run)s AND reason LIKE %(like)s GROUP BY 1 ORDER BY 1
            """,
            {"run": run.pk, "like": EXCLUSION_REASON_PREFIX + "%"},
        )
        excluded = dict(cursor.fetchall())
        cursor.execute(
            """
            SELECT count(*) FROM reconciliation_match m
            JOIN reconciliation_match_item mi ON mi.match_id = m.id AND mi.is_active
            WHERE m.case_id IS NOT NULL AND m.tenant_id = %(tenant)s AND m.definition_id = %(definition)s
              AND m.status = 'active' AND mi.business_date BETWEEN %(date_from)s AND %(date_to)s
            """,
            {
                "tenant": run.tenant_id,
                "definition": run.definition_id,
                "date_from": run.date_from,
                "date_to": run.date_to,
            },
        )
        force_matched = cursor.fetchone()[0]
    return {"excluded": excluded, "force_matched_outside_scope": force_matched}


def replay_as_of(cursor, *, base_run_id: int, tenant_id: int, definition_id: int) -> None:
    """Impact simulation (inside its rolled-back savepoint): the decision exclusions as the past run
    saw them, so the replay's differences are the rules', not decisions made since."""
    params = {"base": base_run_id, "tenant": tenant_id, "definition": definition_id}
    cursor.execute(
        "UPDATE reconciliation_decision_exclusion SET is_active = false, undone_at = now()"
        " WHERE tenant_id = %(tenant)s AND definition_id = %(definition)s AND is_active",
        params,
    )
    cursor.execute(
        """
        INSERT INTO reconciliation_decision_exclusion (tenant_id, definition_id, record_id, business_date,
            side, case_id, reason, note, decided_by, created_at, is_active, undone_by)
        SELECT %(tenant)s, %(definition)s, record_id, business_date, side, split_part(reason, ' ', 4)::bigint,
               split_part(reason, ' ', 2), '', 'simulation', now(), true, ''
        FROM reconciliation_run_exclusion WHERE run_id = %(base)s AND reason LIKE %(like)s
        """,
        params | {"like": EXCLUSION_REASON_PREFIX + "%"},
    )
