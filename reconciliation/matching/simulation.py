"""Dry runs and impact simulations: the real engine, inside a savepoint that is rolled back.

Both run exactly the code a real run runs (scope freeze, passes, breaks, persist, conservation), on a
phantom run row, then roll all of it back; what remains is the ``SimulationReport`` (and the audit
event of its request). Sequences advance — PostgreSQL never rolls them back — but no row of any
other table is left. docs/matching-depth.md says why a savepoint rather than an engine without
writes: the figures are then exactly what a run would produce, by construction.

- Dry run: today's open items of a definition (the scope a run would freeze now, from the records
  already loaded: connectors are not called, a dry run must not ingest) under a rule version — the
  current approved one, or a pending one before anybody approves it.
- Impact simulation: a past run's frozen scope copied to the phantom run, its records released
  from their active matches (inside the savepoint), the engine run under another rule version, and
  the outcome compared with the past run's in SQL before the rollback: matches (by their sorted
  record ids) gained, lost and changed (pass, or matched vs suggested), breaks (by fingerprint) new,
  gone and changed type. Counts are complete; each list keeps its first ``DIFF_ROWS`` entries.

The phantom run is FAILED from birth so it never counts as the definition's run in flight.
"""

from __future__ import annotations

import time
from datetime import date

from django.db import connection, transaction
from django.utils import timezone

from jfintech import audit
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from jfintech.tenancy import permissions
from reconciliation.matching import decisions, engine, metrics
from reconciliation.matching.models import SimulationKind, SimulationReport, SimulationStatus
from reconciliation.matching.passes import parse_rules
from reconciliation.runs import dispatch as messages
from reconciliation.runs import lifecycle
from reconciliation.runs import services as runs
from reconciliation.runs.models import (
    SIDES_OF_KIND,
    Definition,
    DefinitionKind,
    RuleVersion,
    RuleVersionStatus,
    Run,
    RunStatus,
    RunTrigger,
    Side,
)

log = get_logger(__name__)

DIFF_ROWS = 500
SIMULATION_QUEUE = "reconciliation"


def simulation_request(
    *,
    tenant,
    actor: Actor,
    kind: str,
    definition_id: int,
    rule_version_id: int | None = None,
    base_run_id: int | None = None,
    as_of: date | None = None,
    request_key: str = "",
    dispatch: bool = True,
) -> SimulationReport:
    """A pending report (audited); after commit the task computes it (``dispatch=False``: the
    caller runs ``simulation_execute`` itself)."""
    permissions.require(tenant=tenant, actor=actor, area="simulation", verb="add")
    if request_key:
        existing = SimulationReport.objects.filter(tenant=tenant, request_key=request_key).first()
        if existing is not None:
            return existing
    if kind not in SimulationKind.values:
        raise ApplicationError(f"kind must be one of {SimulationKind.values}.", code="invalid_kind")
    definition = Definition.objects.filter(tenant=tenant, pk=definition_id).first()
    if definition is None:
        raise ApplicationError(f"No definition {definition_id} in this tenant.", code="not_found", status=404)
    versions = RuleVersion.objects.filter(definition=definition)
    if rule_version_id is not None:
        version = versions.filter(pk=rule_version_id).first()
        if version is None:
            raise ApplicationError("No such rule version of this definition.", code="not_found", status=404)
        if version.status == RuleVersionStatus.REJECTED:
            raise ApplicationError(
                "That rule version was rejected.", code="rule_version_rejected", status=409
            )
    else:
        version = runs.rule_version_current(definition)
    base_run = None
    window = {"as_of": None, "date_from": None, "date_to": None}
    if kind == SimulationKind.IMPACT:
        base_run = Run.objects.filter(definition=definition, pk=base_run_id).first()
        if base_run is None:
            raise ApplicationError("No such run of this definition.", code="not_found", status=404)
        if base_run.status != RunStatus.COMPLETED:
            raise ApplicationError(
                "Only a completed run can be replayed.", code="run_not_completed", status=409
            )
        window = {"as_of": base_run.as_of, "date_from": base_run.date_from, "date_to": base_run.date_to}
    else:
        as_of, first, last = runs.run_window(definition, as_of)
        window = {"as_of": as_of, "date_from": first, "date_to": last}
    with transaction.atomic():
        report = SimulationReport.objects.create(
            tenant=tenant,
            kind=kind,
            definition=definition,
            rule_version=version,
            base_run=base_run,
            requested_by=actor.display,
            request_key=request_key,
            **window,
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action=f"recon_simulation.{kind}_requested",
            obj=report,
            after={
                "definition_id": definition.pk,
                "rule_version": version.version,
                "base_run_id": base_run.pk if base_run else None,
                **{k: v.isoformat() for k, v in window.items()},
            },
        )
        if dispatch:
            transaction.on_commit(
                lambda: messages.task(messages.SIMULATION_TASK, report.pk, queue=SIMULATION_QUEUE).delay()
            )
    return report


def simulation_execute(*, report_id: int) -> str:
    """Compute a pending report (the task's body). Idempotent: a completed or failed report is left
    as it is; two deliveries at once serialise on the report row."""
    started = time.perf_counter()
    with transaction.atomic():
        report = (
            SimulationReport.objects.select_for_update(of=("self",))
            .select_related("definition", "rule_version", "base_run", "tenant")
            .get(pk=report_id)
        )
        if report.status != SimulationStatus.PENDING:
            return report.status
        try:
            with transaction.atomic():  # the savepoint everything but the report is rolled back to
                summary, diff = _compute(report)
                transaction.set_rollback(True)
        except (ApplicationError, engine.ConservationError) as exc:
            report.status, report.error = SimulationStatus.FAILED, str(exc)
            log.error("recon_simulation_failed", report_id=report_id, kind=report.kind, error=str(exc))
        else:
            report.status, report.summary, report.diff = SimulationStatus.COMPLETED, summary, diff
        report.completed_at = timezone.now()
        report.duration_s = round(time.perf_counter() - started, 4)
        report.save(update_fields=["status", "summary", "diff", "error", "completed_at", "duration_s"])
    metrics.SIMULATIONS.labels(kind=report.kind, outcome=report.status).inc()
    log.info("recon_simulation_done", report_id=report_id, kind=report.kind, status=report.status)
    return report.status


def _phantom_run(report: SimulationReport) -> Run:
    definition = report.definition
    now = timezone.now()
    return Run.objects.create(
        tenant=report.tenant,
        definition=definition,
        rule_version=report.rule_version,
        kind=definition.kind,
        as_of=report.as_of,
        date_from=report.date_from,
        date_to=report.date_to,
        status=RunStatus.FAILED,  # never "in flight": the one-active-run constraint ignores it
        trigger=RunTrigger.API,
        requested_by=f"simulation {report.pk}",
        deadline=now,
        completed_at=now,
    )


def _compute(report: SimulationReport) -> tuple[dict, dict]:
    run = _phantom_run(report)
    with connection.cursor() as cursor:
        if report.kind == SimulationKind.IMPACT:
            _replay_scope(cursor, report.base_run, run)
        else:
            for side in SIDES_OF_KIND[run.kind]:
                sources = list(run.definition.sources.filter(side=side).values_list("source_id", flat=True))
                lifecycle.run_freeze_scope(cursor, run, side, sources)  # the scope a run would freeze now
                if run.kind == DefinitionKind.THREE_WAY and side == Side.LEFT:
                    lifecycle.run_freeze_trade_flow(cursor, run, sources)
    ctx = engine.RunContext(
        run_id=run.pk,
        tenant_id=run.tenant_id,
        definition_id=run.definition_id,
        kind=run.kind,
        as_of=run.as_of,
        date_from=run.date_from,
        date_to=run.date_to,
        rule_label=report.rule_version.label,
    )
    result = engine.reconcile(ctx, parse_rules(report.rule_version.rules))
    summary = {
        "rule_version": report.rule_version.version,
        "records_in_scope": result.records_in_scope,
        "matched": result.matched,
        "suggested": result.suggested,
        "in_breaks": result.in_breaks,
        "excluded": result.excluded,
        "matches": result.matches,
        "breaks_by_type": result.breaks_by_type,
        "passes": result.passes,
        "timings": result.timings,
        "conservation": result.conservation,
    }
    if report.kind == SimulationKind.IMPACT:
        base = report.base_run
        summary["base"] = {
            "run_id": base.pk,
            "rule_version": base.rule_version.version,
            "records_in_scope": base.records_in_scope,
            "matched": base.matched,
            "suggested": base.suggested,
            "in_breaks": base.in_breaks,
            "excluded": base.excluded,
            "matches": base.matches,
            "breaks_by_type": base.breaks_by_type,
        }
        return summary, _diff(base.pk, run.pk)
    return summary, {}


def _replay_scope(cursor, base: Run, run: Run) -> None:
    """The past run's frozen scope (and three-way trade flow) as the phantom run's, with its records
    released from whatever active matches they are in now — inside the savepoint only."""
    params = {"base": base.pk, "run": run.pk, "tenant": run.tenant_id, "definition": run.definition_id}
    cursor.execute(
        "INSERT INTO reconciliation_run_scope (run_id, side, record_ids, records)"
        " SELECT %(run)s, side, record_ids, records FROM reconciliation_run_scope WHERE run_id = %(base)s",
        params,
    )
    cursor.execute(
        "INSERT INTO reconciliation_run_trade_flow"
        " (run_id, account, instrument, business_date, quantity, trades)"
        " SELECT %(run)s, account, instrument, business_date, quantity, trades"
        " FROM reconciliation_run_trade_flow WHERE run_id = %(base)s",
        params,
    )
    cursor.execute(
        f"""
        UPDATE reconciliation_match_item mi SET is_active = false
        WHERE mi.record_id <@ {engine.scope_ids_sql()}
          AND mi.tenant_id = %(tenant)s AND mi.definition_id = %(definition)s AND mi.is_active
        """,
        params,
    )
    decisions.replay_as_of(
        cursor, base_run_id=base.pk, tenant_id=run.tenant_id, definition_id=run.definition_id
    )


_MATCH_DIFF = """
WITH base AS (
    SELECT m.pass_name, m.run_outcome AS outcome, array_agg(mi.record_id ORDER BY mi.record_id) AS ids
    FROM reconciliation_match m JOIN reconciliation_match_item mi ON mi.match_id = m.id
    WHERE m.run_id = %(base)s GROUP BY m.id
), sim AS (
    SELECT m.pass_name, m.run_outcome AS outcome, array_agg(mi.record_id ORDER BY mi.record_id) AS ids
    FROM reconciliation_match m JOIN reconciliation_match_item mi ON mi.match_id = m.id
    WHERE m.run_id = %(sim)s GROUP BY m.id
)
SELECT CASE WHEN b.ids IS NULL THEN 'gained' WHEN s.ids IS NULL THEN 'lost' ELSE 'changed' END AS change,
       coalesce(b.ids, s.ids) AS ids, b.pass_name, b.outcome, s.pass_name, s.outcome
FROM base b FULL JOIN sim s ON s.ids = b.ids
WHERE b.ids IS NULL OR s.ids IS NULL OR b.pass_name <> s.pass_name OR b.outcome <> s.outcome
"""

_BREAK_DIFF = """
WITH base AS (SELECT fingerprint, break_type, record_ids FROM reconciliation_break WHERE run_id = %(base)s),
     sim AS (SELECT fingerprint, break_type, record_ids FROM reconciliation_break WHERE run_id = %(sim)s)
SELECT CASE WHEN b.fingerprint IS NULL THEN 'new' WHEN s.fingerprint IS NULL THEN 'gone' ELSE 'changed' END,
       coalesce(b.fingerprint, s.fingerprint), coalesce(s.record_ids, b.record_ids),
       b.break_type, s.break_type
FROM base b FULL JOIN sim s ON s.fingerprint = b.fingerprint
WHERE b.fingerprint IS NULL OR s.fingerprint IS NULL OR b.break_type <> s.break_type
"""


def _diff(base_run_id: int, sim_run_id: int) -> dict:
    """Counts per kind of change (complete) and the first DIFF_ROWS rows of each, ordered."""
    params = {"base": base_run_id, "sim": sim_run_id, "limit": DIFF_ROWS}
    out = {
        "matches": {k: {"count": 0, "rows": []} for k in ("gained", "lost", "changed")},
        "breaks": {k: {"count": 0, "rows": []} for k in ("new", "gone", "changed")},
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT change, ids, base_pass, base_outcome, sim_pass, sim_outcome, total FROM (
                SELECT d.*, row_number() OVER (PARTITION BY change ORDER BY ids) AS rn,
                       count(*) OVER (PARTITION BY change) AS total
                FROM ({_MATCH_DIFF}) AS d(change, ids, base_pass, base_outcome, sim_pass, sim_outcome)
            ) ranked WHERE rn <= %(limit)s ORDER BY change, rn
            """,
            params,
        )
        for change, ids, base_pass, base_outcome, sim_pass, sim_outcome, total in cursor.fetchall():
            entry = out["matches"][change]
            entry["count"] = total
            entry["rows"].append(
                {
                    "record_ids": ids,
                    "before": {"pass": base_pass, "outcome": base_outcome} if base_pass else None,
                    "after": {"pass": sim_pass, "outcome": sim_outcome} if sim_pass else None,
                }
            )
        cursor.execute(
            f"""
            SELECT change, fingerprint, record_ids, base_type, sim_type, total FROM (
                SELECT d.*, row_number() OVER (PARTITION BY change ORDER BY record_ids) AS rn,
                       count(*) OVER (PARTITION BY change) AS total
                FROM ({_BREAK_DIFF}) AS d(change, fingerprint, record_ids, base_type, sim_type)
            ) ranked WHERE rn <= %(limit)s ORDER BY change, rn
            """,
            params,
        )
        for change, fingerprint, record_ids, base_type, sim_type, total in cursor.fetchall():
            entry = out["breaks"][change]
            entry["count"] = total
            entry["rows"].append(
                {"fingerprint": fingerprint, "record_ids": record_ids, "before": base_type, "after": sim_type}
            )
    return out
