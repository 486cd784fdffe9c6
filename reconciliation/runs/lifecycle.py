"""A run's lifecycle, the one interface the run's services, its tasks, sharding and simulation
call to move a run (docs/reconciliation.md):

- ``run_freeze_scope`` / ``run_freeze_trade_flow``: a side's open items frozen as the run's scope;
- ``run_lock_for_compute``: the run's compute lock (one delivery computes or completes it at once);
- ``run_begin_matching``: the compare-and-set into MATCHING that starts a compute attempt;
- ``RunProgress``: progress and heartbeat, visible while the compute transaction is open;
- ``run_context``: what the engine needs of the run;
- ``run_complete`` / ``run_observe_completed``: MATCHING → COMPLETED with the cases synced;
- ``run_fail``: any state → FAILED, exactly once and loudly;
- ``Superseded``: raised when the run moved on under a compute (it rolls back).

It imports no task module: the messages that drive a run are built by name (runs.dispatch).
"""

from __future__ import annotations

import time

from django.db import connection, connections, transaction
from django.utils import timezone

from exceptions import services as cases
from exceptions.types import BreakInput
from jfintech import audit
from jfintech.audit import Actor
from jfintech.observability.logging import get_logger
from reconciliation.matching import engine
from reconciliation.models import DataSource
from reconciliation.runs import metrics
from reconciliation.runs.models import SIDES_OF_KIND, Break, Run, RunPart, RunStatus

log = get_logger(__name__)

RUNNER = Actor.for_system("reconciliation")
# Serialises deliveries of one run's compute (pg_advisory_xact_lock(namespace, run id)).
_COMPUTE_LOCK_NAMESPACE = 5005


_FREEZE_SCOPE = """
INSERT INTO reconciliation_run_scope (run_id, side, record_ids, records)
SELECT %(run)s, %(side)s, coalesce(range_agg(int8range(r.id, r.id, '[]')), '{}'), count(*)
FROM reconciliation_record r
WHERE r.tenant_id = %(tenant)s AND r.source_id = ANY(%(sources)s) AND r.status = 'active'
  AND r.business_date BETWEEN %(date_from)s AND %(date_to)s
  AND NOT EXISTS (
      SELECT 1 FROM reconciliation_match_item mi
      WHERE mi.tenant_id = %(tenant)s AND mi.definition_id = %(definition)s AND mi.record_id = r.id
        AND mi.business_date = r.business_date AND mi.is_active)
RETURNING records
"""


def run_freeze_scope(cursor, run: Run, side: str, source_ids: list[int]) -> int:
    """Open items: the side's active records in the window that no earlier run has matched, frozen
    as one multirange of ids (RunScope). Returns how many."""
    cursor.execute(
        _FREEZE_SCOPE,
        {
            "run": run.pk,
            "side": side,
            "tenant": run.tenant_id,
            "sources": source_ids,
            "date_from": run.date_from,
            "date_to": run.date_to,
            "definition": run.definition_id,
        },
    )
    return cursor.fetchone()[0]


def run_freeze_trade_flow(cursor, run: Run, source_ids: list[int]) -> None:
    """Three-way: traded quantity per account, instrument and day over the window, from ALL active
    trades (matched earlier or not): positions move with every trade."""
    cursor.execute(
        """
        INSERT INTO reconciliation_run_trade_flow
            (run_id, account, instrument, business_date, quantity, trades)
        SELECT %(run)s, account, instrument, business_date, sum(coalesce(quantity, 0)), count(*)
        FROM reconciliation_record
        WHERE tenant_id = %(tenant)s AND source_id = ANY(%(sources)s) AND status = 'active'
          AND business_date BETWEEN %(date_from)s AND %(date_to)s
        GROUP BY account, instrument, business_date
        """,
        {
            "run": run.pk,
            "tenant": run.tenant_id,
            "sources": source_ids,
            "date_from": run.date_from,
            "date_to": run.date_to,
        },
    )


def run_missing_sides(run: Run) -> list[str]:
    present = set(RunPart.objects.filter(run=run).values_list("side", flat=True))
    return [side for side in SIDES_OF_KIND[run.kind] if side not in present]


class RunProgress:
    """Progress and heartbeat written on a connection of their own, so they are visible while the
    compute transaction (which holds everything else) is still open."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.conn = None

    def __call__(self, done: int, total: int) -> None:
        if self.conn is None:
            self.conn = connections.create_connection("default")
        with self.conn.cursor() as cursor:
            cursor.execute(
                "UPDATE reconciliation_run SET progress_done = %s, progress_total = %s, heartbeat_at = now()"
                " WHERE id = %s AND status = 'matching'",
                [done, total, self.run_id],
            )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class Superseded(Exception):
    """The run left MATCHING while we computed (the reaper failed it): roll everything back."""


def run_lock_for_compute(run_id: int) -> bool:
    """The run's compute lock (transaction-scoped): one delivery computes or completes a run at once."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_COMPUTE_LOCK_NAMESPACE, run_id])
        return cursor.fetchone()[0]


def run_context(run: Run, shard: tuple[int, int] | None = None) -> engine.RunContext:
    return engine.RunContext(
        run_id=run.pk,
        tenant_id=run.tenant_id,
        definition_id=run.definition_id,
        kind=run.kind,
        as_of=run.as_of,
        date_from=run.date_from,
        date_to=run.date_to,
        rule_label=run.rule_version.label,
        shard=shard,
    )


def run_complete(run: Run, result: engine.EngineResult, started: float) -> dict:
    """Inside the compute transaction, after the engine: sync the cases, move the run to COMPLETED
    with its counts (compare-and-set from MATCHING), audit. Returns the run's timings."""
    run_id = run.pk
    t0 = time.perf_counter()
    case_counts = _sync_cases(run)
    result.timings["cases"] = round(time.perf_counter() - t0, 4)
    fetch_timings = dict(RunPart.objects.filter(run_id=run_id).values_list("side", "duration_s"))
    timings = {f"fetch:{side}": s for side, s in fetch_timings.items()} | result.timings
    timings["compute"] = round(time.perf_counter() - started, 4)
    now = timezone.now()
    first_match_id, last_match_id = result.match_ids or (None, None)
    moved = Run.objects.filter(pk=run_id, status=RunStatus.MATCHING).update(
        status=RunStatus.COMPLETED,
        first_match_id=first_match_id,
        last_match_id=last_match_id,
        completed_at=now,
        heartbeat_at=now,
        records_in_scope=result.records_in_scope,
        matched=result.matched,
        suggested=result.suggested,
        in_breaks=result.in_breaks,
        excluded=result.excluded,
        matches=result.matches,
        breaks_by_type=result.breaks_by_type,
        timings=timings,
        conservation=result.conservation,
        cases=case_counts,
        progress_done=result.records_in_scope,
        progress_total=result.records_in_scope,
        error="",
        error_code="",
    )
    if not moved:
        raise Superseded()
    audit.record(
        tenant=run.tenant,
        actor=RUNNER,
        action="recon_run.completed",
        obj=run,
        after={
            "records_in_scope": result.records_in_scope,
            "matched": result.matched,
            "in_breaks": result.in_breaks,
            "excluded": result.excluded,
            "breaks_by_type": result.breaks_by_type,
            "cases": case_counts,
        },
    )
    return timings


def run_observe_completed(run: Run, result: engine.EngineResult, timings: dict) -> None:
    """After the commit: metrics and the completion log line."""
    _observe_completed(run, result, timings)
    log.info(
        "recon_run_completed",
        records_in_scope=result.records_in_scope,
        matched=result.matched,
        in_breaks=result.in_breaks,
        excluded=result.excluded,
        breaks_by_type=result.breaks_by_type,
        duration_ms=round(timings["compute"] * 1000, 1),
        **{"recon.run_id": run.pk},
    )


def run_begin_matching(run_id: int) -> None:
    """fetching -> matching (or matching again, on redelivery), attempts + 1, on its own connection so
    it is visible at once and survives a rollback of the compute."""
    conn = connections.create_connection("default")
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "UPDATE reconciliation_run SET status = 'matching', attempts = attempts + 1,"
                " heartbeat_at = now(), fetched_at = coalesce(fetched_at, now()), progress_done = 0"
                " WHERE id = %s AND status IN ('fetching', 'matching', 'pending')",
                [run_id],
            )
            if cursor.rowcount != 1:
                raise Superseded()
    finally:
        conn.close()


def _previous_completed_run_id(run: Run) -> int | None:
    return (
        Run.objects.filter(definition_id=run.definition_id, status=RunStatus.COMPLETED, pk__lt=run.pk)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )


_MATCHED_FINGERPRINTS = """
SELECT DISTINCT b.fingerprint FROM reconciliation_break b
WHERE b.run_id = %(prev)s AND b.break_type <> 'position_break'
  AND EXISTS (
      SELECT 1 FROM unnest(b.record_ids, b.record_dates) AS x(record_id, business_date)
      JOIN reconciliation_match_item mi
        ON mi.tenant_id = %(tenant)s AND mi.definition_id = %(definition)s AND mi.record_id = x.record_id
       AND mi.business_date = x.business_date AND mi.is_active)
  AND b.fingerprint NOT IN (SELECT fingerprint FROM reconciliation_break WHERE run_id = %(run)s)
UNION
SELECT b.fingerprint FROM reconciliation_break b JOIN _pos p USING (account, instrument)
WHERE b.run_id = %(prev)s AND b.break_type = 'position_break' AND p.balanced
"""


def _sync_cases(run: Run) -> dict:
    """Open/update one case per break, resolve (auto_matched) the cases of the previous run's breaks
    whose records this run matched — inside the compute transaction, so cases and matches commit
    together or not at all."""
    breaks = [
        BreakInput(
            fingerprint=b.fingerprint,
            break_type=b.break_type,
            record_ids=list(b.record_ids),
            snapshot=b.snapshot,
            differences=b.differences,
            amount_at_stake=b.amount_at_stake,
            currency=b.currency,
            reference=b.reference,
            account=b.account,
            instrument=b.instrument,
            rule=b.rule,
        )
        for b in Break.objects.filter(run_id=run.pk).order_by("pk").iterator(chunk_size=5000)
    ]
    matched: list[str] = []
    prev = _previous_completed_run_id(run)
    if prev is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                _MATCHED_FINGERPRINTS,
                {"prev": prev, "run": run.pk, "tenant": run.tenant_id, "definition": run.definition_id},
            )
            matched = [row[0] for row in cursor.fetchall()]
    return cases.cases_sync_for_run(
        tenant=run.tenant,
        definition_id=run.definition_id,
        definition_name=run.definition.name,
        run_id=run.pk,
        trace_id=run.trace_id,
        breaks=breaks,
        actor=RUNNER,
        matched_fingerprints=matched,
    )


def _side_kinds(run: Run) -> list[str]:
    return sorted(
        set(
            DataSource.objects.filter(pk__in=run.definition.sources.values("source_id")).values_list(
                "kind", flat=True
            )
        )
    )


def _observe_completed(run: Run, result: engine.EngineResult, timings: dict) -> None:
    for (kind, outcome), n in result.by_kind.items():
        metrics.TRANSACTIONS_PROCESSED.labels(txn_type=kind, outcome=outcome).inc(n)
    matching_s = sum(v for k, v in result.timings.items() if k.startswith("pass:") or k == "breaks")
    for kind in _side_kinds(run):
        metrics.TRANSACTION_PROCESSING_SECONDS.labels(txn_type=kind).observe(matching_s)
    metrics.RUNS.labels(kind=run.kind, outcome="completed").inc()
    metrics.RUN_DURATION.labels(kind=run.kind, outcome="completed").observe(
        (timezone.now() - run.created_at).total_seconds()
    )


def run_fail(
    *, run_id: int, error: str, code: str, conservation: dict | None = None, actor: Actor = RUNNER
) -> bool:
    """Move a non-terminal run to FAILED exactly once, loudly: an error log line with the trace id,
    recon_runs_total{outcome=failed} and recon_errors_total, and a case for the analysts (opened in
    the same transaction as the state change). False if the run was already terminal."""
    with transaction.atomic():
        run = (
            Run.objects.select_for_update(of=("self",)).select_related("definition", "tenant").get(pk=run_id)
        )
        if run.is_terminal:
            return False
        now = timezone.now()
        fields = {
            "status": RunStatus.FAILED,
            "completed_at": now,
            "heartbeat_at": now,
            "error": error[:10000],
            "error_code": code[:40],
        }
        if conservation is not None:
            fields["conservation"] = conservation
        Run.objects.filter(pk=run_id).update(**fields)
        audit.record(
            tenant=run.tenant,
            actor=actor,
            action="recon_run.failed",
            obj=run,
            before={"status": run.status},
            after={"status": "failed", "error_code": code, "error": error[:2000]},
        )
        cases.case_open_for_failed_run(
            tenant=run.tenant,
            definition_id=run.definition_id,
            definition_name=run.definition.name,
            run_id=run_id,
            trace_id=run.trace_id,
            error=f"{code}: {error}",
            actor=actor,
        )
    log.error(
        "recon_run_failed",
        error=error[:2000],
        error_code=code,
        run_trace_id=run.trace_id,
        status_before=run.status,
        **{"recon.run_id": run_id, "error.type": code},
    )
    metrics.RUNS.labels(kind=run.kind, outcome="failed").inc()
    metrics.RUN_DURATION.labels(kind=run.kind, outcome="failed").observe(
        (now - run.created_at).total_seconds()
    )
    for kind in _side_kinds(run):
        metrics.ERRORS.labels(txn_type=kind, error_type=code).inc()
    return True
