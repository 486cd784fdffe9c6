"""Manual matching and unmatching by an analyst, with a reason, audited.

- ``match_create_manual``: records of the definition's left and right sources (at least one of
  each), all active and in no active match — the partial unique index on match items refuses a
  record matched meanwhile, whatever the path (409 ``record_already_matched``). The match is
  ``pass_name = "manual"``, ``pass_no = 0``, no run; its differences are the sums per side and
  currency. Pending suggestions that hold any of its records expire; open cases of earlier breaks
  of its records are resolved (``exceptions.services.cases_resolve_matched``).
- ``match_unmatch``: an active match (a run's, an accepted suggestion or a manual one) becomes
  ``undone`` and its items inactive: the records are open items again and the next run's scope
  (records in no active match) takes them. A force-match decided on a case (``case_id`` set) is
  undone only by undoing that decision, four-eyes (``match_undo`` from matching.decisions).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from exceptions import services as cases
from jfintech import audit
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from jfintech.tenancy import permissions
from reconciliation.matching import metrics
from reconciliation.matching.passes import parse_rules
from reconciliation.runs.models import (
    MANUAL_PASS_NAME,
    Definition,
    Match,
    MatchStatus,
    RuleVersionStatus,
    Run,
    Side,
)

log = get_logger(__name__)

MAX_MANUAL_RECORDS = 500


def require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Give a reason.", code="reason_required", status=400)
    return reason


def locked_match(tenant, match_id: int) -> Match:
    match = Match.objects.select_for_update().filter(tenant_id=tenant.pk, pk=match_id).first()
    if match is None:
        raise ApplicationError(f"No match {match_id} in this tenant.", code="match_not_found", status=404)
    return match


def match_items(match_id: int) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT record_id, business_date, side FROM reconciliation_match_item WHERE match_id = %s"
            " ORDER BY side, record_id",
            [match_id],
        )
        return [{"record_id": r, "business_date": d.isoformat(), "side": s} for r, d, s in cursor.fetchall()]


def activate_items(match: Match) -> None:
    """Make the match's items hold their records; the unique index says no if one is taken."""
    try:
        # A savepoint: the IntegrityError must not poison the caller's block.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE reconciliation_match_item SET is_active = true WHERE match_id = %s", [match.pk]
            )
    except IntegrityError:
        raise ApplicationError(
            "A record of this match is in another active match already.",
            code="record_already_matched",
            status=409,
        ) from None


def expire_suggestions_holding(*, tenant_id: int, definition_id: int, match_id: int, actor: Actor) -> int:
    """Pending suggestions sharing a record with ``match_id`` can no longer be accepted: expire them."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE reconciliation_match m SET status = 'expired', decided_at = now(), decided_by = %(by)s
            WHERE m.tenant_id = %(tenant)s AND m.definition_id = %(definition)s AND m.status = 'suggested'
              AND m.id <> %(match)s
              AND EXISTS (
                  SELECT 1 FROM reconciliation_match_item mi JOIN reconciliation_match_item mine
                    ON mine.record_id = mi.record_id AND mine.business_date = mi.business_date
                  WHERE mi.match_id = m.id AND mine.match_id = %(match)s)
            """,
            {"tenant": tenant_id, "definition": definition_id, "match": match_id, "by": actor.display},
        )
        return cursor.rowcount


def resolve_cases_of(*, tenant, definition_id: int, record_ids: list[int], actor: Actor) -> int:
    """Resolve (auto_matched) the open cases of earlier breaks holding any of ``record_ids``: their
    records are matched now. Through exceptions.services, which is idempotent and audits."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT fingerprint FROM reconciliation_break
            WHERE tenant_id = %(tenant)s AND definition_id = %(definition)s
              AND record_ids && %(ids)s::bigint[] AND break_type <> 'position_break'
            """,
            {"tenant": tenant.pk, "definition": definition_id, "ids": record_ids},
        )
        fingerprints = [row[0] for row in cursor.fetchall()]
    if not fingerprints:
        return 0
    last_run_id, last_trace_id = Run.objects.filter(definition_id=definition_id).order_by("-pk").values_list(
        "pk", "trace_id"
    ).first() or (0, "")
    return cases.cases_resolve_matched(
        tenant=tenant,
        definition_id=definition_id,
        run_id=last_run_id,
        trace_id=last_trace_id,
        matched_fingerprints=fingerprints,
        actor=actor,
    )


_RECORDS_OF_DEFINITION = """
SELECT r.id, r.business_date, ds.side, r.status, r.currency, r.amount
FROM reconciliation_record r
JOIN reconciliation_definitionsource ds ON ds.source_id = r.source_id AND ds.definition_id = %(definition)s
WHERE r.tenant_id = %(tenant)s AND r.id = ANY(%(ids)s::bigint[])
"""


def _differences(rows: list[tuple], amount_sign: str) -> dict:
    """Sums per side and currency (the right side negated when the rules compare opposite signs)."""
    sign = Decimal(-1) if amount_sign == "opposite" else Decimal(1)
    sums: dict = {}
    for _id, _date, side, _status, currency, amount in rows:
        entry = sums.setdefault(currency or "", {"left": Decimal(0), "right": Decimal(0)})
        entry[side] += (amount or Decimal(0)) * (sign if side == Side.RIGHT else 1)
    lefts = sum(1 for row in rows if row[2] == Side.LEFT)
    return {
        "cardinality": f"{lefts}:{len(rows) - lefts}",
        "amount": {
            currency: {
                "left_sum": str(v["left"]),
                "right_sum": str(v["right"]),
                "delta": str(v["left"] - v["right"]),
            }
            for currency, v in sorted(sums.items())
        },
    }


def match_create_manual(
    *,
    tenant,
    actor: Actor,
    definition_id: int,
    record_ids: list[int],
    reason: str,
    case_id: int | None = None,
) -> Match:
    """``case_id``: the case whose force-match decision this match is (matching.decisions)."""
    permissions.require(tenant=tenant, actor=actor, area="match", verb="decide")
    reason = require_reason(reason)
    ids = sorted({int(i) for i in record_ids})
    if not 2 <= len(ids) <= MAX_MANUAL_RECORDS:
        raise ApplicationError(
            f"A manual match holds 2 to {MAX_MANUAL_RECORDS} records.", code="invalid_records", status=400
        )
    definition = Definition.objects.filter(tenant=tenant, pk=definition_id).first()
    if definition is None:
        raise ApplicationError(f"No definition {definition_id} in this tenant.", code="not_found", status=404)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                _RECORDS_OF_DEFINITION, {"definition": definition.pk, "tenant": tenant.pk, "ids": ids}
            )
            rows = cursor.fetchall()
        unknown = sorted(set(ids) - {row[0] for row in rows})
        if unknown:
            raise ApplicationError(
                "Records not found among this definition's sources.",
                code="records_not_found",
                extra={"record_ids": unknown[:50]},
                status=404,
            )
        inactive = [row[0] for row in rows if row[3] != "active"]
        if inactive:
            raise ApplicationError(
                "Superseded or reversed records cannot be matched.",
                code="records_not_active",
                extra={"record_ids": inactive[:50]},
                status=409,
            )
        sides = {row[2] for row in rows}
        if not {Side.LEFT, Side.RIGHT} <= sides or Side.POSITION in sides:
            raise ApplicationError(
                "A manual match needs records of the left and of the right side (never positions).",
                code="invalid_sides",
                status=400,
            )
        rules = (
            definition.rule_versions.filter(status=RuleVersionStatus.APPROVED).order_by("-version").first()
        )
        sign = parse_rules(rules.rules).amount_sign if rules else "same"
        now = timezone.now()
        match = Match.objects.create(
            tenant_id=tenant.pk,
            definition_id=definition.pk,
            run=None,
            pass_no=0,
            pass_name=MANUAL_PASS_NAME,
            status=MatchStatus.ACTIVE,
            differences=_differences(rows, sign),
            created_at=now,
            created_by=actor.display,
            decision_note=reason,
            case_id=case_id,
        )
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    """
                        INSERT INTO reconciliation_match_item (match_id, record_id, business_date, side,
                                                               tenant_id, definition_id, is_active)
                        SELECT %(match)s, id, business_date, side, %(tenant)s, %(definition)s, true
                        FROM unnest(%(ids)s::bigint[], %(dates)s::date[], %(sides)s::text[])
                            AS x(id, business_date, side)
                        """,
                    {
                        "match": match.pk,
                        "tenant": tenant.pk,
                        "definition": definition.pk,
                        "ids": [row[0] for row in rows],
                        "dates": [row[1] for row in rows],
                        "sides": [row[2] for row in rows],
                    },
                )
        except IntegrityError:
            raise ApplicationError(
                "A record is in an active match already; unmatch it first.",
                code="record_already_matched",
                status=409,
            ) from None
        expired = expire_suggestions_holding(
            tenant_id=tenant.pk, definition_id=definition.pk, match_id=match.pk, actor=actor
        )
        resolved = resolve_cases_of(tenant=tenant, definition_id=definition.pk, record_ids=ids, actor=actor)
        audit.record(
            tenant=tenant,
            actor=actor,
            action="recon_match.manual_created",
            obj=match,
            after={
                "definition_id": definition.pk,
                "record_ids": ids,
                "differences": match.differences,
                "reason": reason,
                "suggestions_expired": expired,
                "cases_resolved": resolved,
                "case_id": case_id,
            },
        )
    metrics.MATCH_DECISIONS.labels(decision="manual_match").inc()
    log.info("recon_match_manual_created", match_id=match.pk, definition_id=definition.pk, records=len(ids))
    return match


def match_unmatch(*, tenant, actor: Actor, match_id: int, reason: str) -> Match:
    permissions.require(tenant=tenant, actor=actor, area="match", verb="decide")
    reason = require_reason(reason)
    with transaction.atomic():
        match = locked_match(tenant, match_id)
        if match.case_id is not None:
            raise ApplicationError(
                f"Match {match_id} is the force-match decided on case {match.case_id}. Undo that decision "
                "instead (a request an approver decides).",
                code="decided_match",
                extra={"case_id": match.case_id},
                status=409,
            )
        return match_undo(tenant=tenant, actor=actor, match_id=match_id, reason=reason)


def match_undo(*, tenant, actor: Actor, match_id: int, reason: str) -> Match:
    """Unmatch without the decided-match guard: for match_unmatch, and for undoing an approved
    force-match decision (matching.decisions, inside the approval's transaction)."""
    permissions.require(tenant=tenant, actor=actor, area="match", verb="decide")
    reason = require_reason(reason)
    with transaction.atomic():
        match = locked_match(tenant, match_id)
        if match.status != MatchStatus.ACTIVE:
            raise ApplicationError(
                f"Match {match_id} is {match.status}; only an active match can be unmatched.",
                code="not_active",
                status=409,
            )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE reconciliation_match_item SET is_active = false WHERE match_id = %s", [match.pk]
            )
        before = {"status": match.status, "decided_by": match.decided_by}
        match.status = MatchStatus.UNDONE
        match.decided_by, match.decided_at, match.decision_note = actor.display, timezone.now(), reason
        match.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        audit.record(
            tenant=tenant,
            actor=actor,
            action="recon_match.unmatched",
            obj=match,
            before=before,
            after={"status": match.status, "reason": reason, "items": match_items(match.pk)},
        )
    metrics.MATCH_DECISIONS.labels(decision="unmatch").inc()
    log.info("recon_match_unmatched", match_id=match.pk, definition_id=match.definition_id)
    return match
