"""A run's lifecycle, the one interface the run's services, its tasks, sharding and simulation
call to move a run (docs/reconciliation.md):

- ``run_freeze_scope`` / ``run_freeze_trade_flow``: a side's open items frozen as the run's scope;
- ``run_lock_for_compute``: the run's compute lock (one delivery computes or completes it at once);
- ``run_begin_matching``: the compare-and-set into MATCHING that starts a compute attempt;
- ``RunProgress``: progress and heartbeat, visible while the compute transaction is open;
- ``run_context``: what the engine needs of the run;
- ``run_complete`` / ``run_observe_completed``: MATCHING → COMPLETED with the cases synced;
- ``run_fail``: any state → FAILED, exactly once and loudly, every record of the frozen scope
  accounted for (``unprocessed`` with the failure's reason, beside what committed);
- ``RunHeartbeat``: the heartbeat a live step writes, whatever phase it is in;
- ``run_redrive``: the reaper's re-drive of a run whose heartbeat went stale (or its failure after
  ``RUN_MAX_ATTEMPTS``);
- ``Superseded``: raised when the run moved on under a compute (it rolls back).

It imports no task module: the messages that drive a run are built by name (runs.dispatch).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from exceptions import services as cases
from exceptions.types import BreakInput
from jfintech import audit
from jfintech.audit import Actor
from jfintech.observability.logging import get_logger
from jfintech.tenancy import permissions
from reconciliation.matching import decisions, engine
from reconciliation.models import DataSource
from reconciliation.runs import dispatch, metrics
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
    compute transaction (which holds everything else) is still open. Only while the run is at this
    compute's attempt: a superseded attempt writes nothing."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.attempt: int | None = None  # set by the compute once run_begin_matching gave it one
        self.conn = None

    def __call__(self, done: int, total: int) -> None:
        if self.conn is None:
            self.conn = connections.create_connection("default")
        with self.conn.cursor() as cursor:
            cursor.execute(
                "UPDATE reconciliation_run SET progress_done = %s, progress_total = %s, heartbeat_at = now()"
                " WHERE id = %s AND status = 'matching' AND (%s::integer IS NULL OR attempts = %s)",
                [done, total, self.run_id, self.attempt, self.attempt],
            )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class Superseded(Exception):
    """The run left MATCHING while we computed (the reaper failed it), or a later attempt began:
    roll everything back."""


# Written without waiting: the row may be locked by the step's own transaction as it completes
# (which would make the step wait for its own heartbeat) or by the reaper for a moment.
_BEAT = """
UPDATE reconciliation_run SET heartbeat_at = now()
WHERE id = (SELECT id FROM reconciliation_run WHERE id = %(run)s AND status = ANY(%(statuses)s)
              AND (%(attempt)s::integer IS NULL OR attempts = %(attempt)s)
            FOR UPDATE SKIP LOCKED)
"""


class RunHeartbeat:
    """While a step of the run is working (a fetch, a compute, a shard, the finish), a thread of its
    process writes the run's heartbeat every RUN_HEARTBEAT_SECONDS on a connection of its own:
    whatever the phase (one long pass, the persist, the case sync), a live step keeps its run fresh
    and the reaper never takes it for a stale one. The thread dies with its process, so a killed
    worker's run goes stale and is re-driven (run_redrive). ``attempt``: beat only while the run is
    at this compute attempt (a superseded compute stops keeping the run alive)."""

    def __init__(self, run_id: int, statuses: tuple[str, ...], attempt: int | None = None):
        self.params = {"run": run_id, "statuses": list(statuses), "attempt": attempt}
        self.interval = settings.RUN_HEARTBEAT_SECONDS
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-run-{run_id}", daemon=True)

    def __enter__(self) -> RunHeartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()

    def _beat(self) -> None:
        conn = None
        while not self.stopped.wait(self.interval):
            try:
                conn = conn or connections.create_connection("default")
                with conn.cursor() as cursor:
                    cursor.execute(_BEAT, self.params)
            except DatabaseError as exc:  # the next beat retries on a new connection
                log.warning("recon_heartbeat_failed", error=str(exc), **{"recon.run_id": self.params["run"]})
                conn = conn.close() if conn is not None else None
        if conn is not None:
            conn.close()


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


def run_complete(run: Run, result: engine.EngineResult, started: float, attempt: int | None = None) -> dict:
    """Inside the compute transaction, after the engine: sync the cases, move the run to COMPLETED
    with its counts (compare-and-set from MATCHING, and from ``attempt`` when given: a compute that a
    later attempt superseded fails to commit), audit. Returns the run's timings."""
    run_id = run.pk
    t0 = time.perf_counter()
    case_counts = _sync_cases(run)
    result.conservation["decided"] = decisions.decided_outcomes(run)
    result.timings["cases"] = round(time.perf_counter() - t0, 4)
    fetch_timings = dict(RunPart.objects.filter(run_id=run_id).values_list("side", "duration_s"))
    timings = {f"fetch:{side}": s for side, s in fetch_timings.items()} | result.timings
    timings["compute"] = round(time.perf_counter() - started, 4)
    now = timezone.now()
    first_match_id, last_match_id = result.match_ids or (None, None)
    current = {"attempts": attempt} if attempt is not None else {}
    moved = Run.objects.filter(pk=run_id, status=RunStatus.MATCHING, **current).update(
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


def run_begin_matching(run_id: int) -> int:
    """fetching -> matching (or matching again, on redelivery or re-drive), attempts + 1, on its own
    connection so it is visible at once and survives a rollback of the compute. Returns the attempt
    number: run_complete commits only while the run is still at it."""
    conn = connections.create_connection("default")
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "UPDATE reconciliation_run SET status = 'matching', attempts = attempts + 1,"
                " heartbeat_at = now(), fetched_at = coalesce(fetched_at, now()), progress_done = 0"
                " WHERE id = %s AND status IN ('fetching', 'matching', 'pending') RETURNING attempts",
                [run_id],
            )
            row = cursor.fetchone()
            if row is None:
                raise Superseded()
            return row[0]
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
    the same transaction as the state change). False if the run was already terminal.

    The failed run still accounts for every record of its frozen scope (failed_conservation): what
    committed before the failure (a sharded run's finished shards) and the rest as ``unprocessed``
    with the failure's reason. ``conservation``: the engine's failed proof, kept beside it."""
    with transaction.atomic():
        run = (
            Run.objects.select_for_update(of=("self",)).select_related("definition", "tenant").get(pk=run_id)
        )
        permissions.require(tenant=run.tenant, actor=actor, area="run", verb="fail")
        if run.is_terminal:
            return False
        now = timezone.now()
        proof = failed_conservation(run_id, reason=f"{code}: {error[:500]}", failed_proof=conservation)
        Run.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED,
            completed_at=now,
            heartbeat_at=now,
            error=error[:10000],
            error_code=code[:40],
            conservation=proof,
            records_in_scope=proof["in_scope"],
            matched=proof["matched"],
            suggested=proof["suggested"],
            in_breaks=proof["in_breaks"],
            excluded=proof["excluded"],
        )
        audit.record(
            tenant=run.tenant,
            actor=actor,
            action="recon_run.failed",
            obj=run,
            before={"status": run.status},
            after={
                "status": "failed",
                "error_code": code,
                "error": error[:2000],
                "in_scope": proof["in_scope"],
                "unprocessed": proof["unprocessed"],
            },
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
        in_scope=proof["in_scope"],
        unprocessed=proof["unprocessed"],
        **{"recon.run_id": run_id, "error.type": code},
    )
    metrics.RUNS.labels(kind=run.kind, outcome="failed").inc()
    metrics.RUN_DURATION.labels(kind=run.kind, outcome="failed").observe(
        (now - run.created_at).total_seconds()
    )
    for kind in _side_kinds(run):
        metrics.ERRORS.labels(txn_type=kind, error_type=code).inc()
    return True


# What a run committed, read from the outcome tables themselves (a failed run's transaction rolled
# back; a sharded run's finished shards did commit theirs). Match items are counted by the run
# outcome they were written with, as the engine counted them.
_COMMITTED_OUTCOMES = """
SELECT
  (SELECT coalesce(sum(records), 0) FROM reconciliation_run_scope WHERE run_id = %(run)s),
  (SELECT count(*) FILTER (WHERE m.run_outcome = 'active') FROM reconciliation_match m
     JOIN reconciliation_match_item mi ON mi.match_id = m.id WHERE m.run_id = %(run)s),
  (SELECT count(*) FILTER (WHERE m.run_outcome = 'suggested') FROM reconciliation_match m
     JOIN reconciliation_match_item mi ON mi.match_id = m.id WHERE m.run_id = %(run)s),
  (SELECT coalesce(sum(cardinality(record_ids)), 0) FROM reconciliation_break
     WHERE run_id = %(run)s AND break_type <> 'position_break'),
  (SELECT count(*) FROM reconciliation_run_exclusion WHERE run_id = %(run)s)
"""


def failed_conservation(run_id: int, *, reason: str, failed_proof: dict | None = None) -> dict:
    """A failed run's conservation: in scope = matched + suggested + in breaks + excluded (what
    committed) + unprocessed (the rest, with the failure's reason). ``ok`` says the committed
    outcomes fit inside the scope; a negative remainder would mean outcomes outside it."""
    with connection.cursor() as cursor:
        cursor.execute(_COMMITTED_OUTCOMES, {"run": run_id})
        in_scope, matched, suggested, in_breaks, excluded = (int(v) for v in cursor.fetchone())
    accounted = matched + suggested + in_breaks + excluded
    proof = {
        "in_scope": in_scope,
        "matched": matched,
        "suggested": suggested,
        "in_breaks": in_breaks,
        "excluded": excluded,
        "unprocessed": in_scope - accounted,
        "unprocessed_reason": reason,
        "accounted": accounted,
        "ok": accounted <= in_scope,
    }
    if failed_proof is not None:
        proof["failed_proof"] = failed_proof
    return proof


# --- re-drive: the reaper's answer to a run whose worker is gone ---------------------------------


def run_redrive(
    *,
    run_id: int,
    now: datetime,
    fetch_queue: str = dispatch.FETCH_QUEUE,
    compute_queue: str = dispatch.COMPUTE_QUEUE,
) -> str:
    """Re-send the step of a run whose heartbeat is older than RUN_STALE_HEARTBEAT_SECONDS before
    ``now`` (the reaper's clock): "redriven", "failed"
    (it has been driven RUN_MAX_ATTEMPTS times already) or "fresh" (it beat, or ended, meanwhile).

    A compare-and-set under the run's row lock: the staleness is checked again there and the re-drive
    count moves with the heartbeat, so two reapers re-drive a run once. The step is re-sent after
    commit: a pending or fetching run gets its chord again (a side already fetched finds its part
    and does nothing), a matching one its compute (which takes the next attempt, so the lost attempt
    can no longer commit, and re-sends a sharded run's shards: a finished shard finds its row)."""
    max_attempts = settings.RUN_MAX_ATTEMPTS
    stale_before = now - timedelta(seconds=settings.RUN_STALE_HEARTBEAT_SECONDS)
    with transaction.atomic():
        run = Run.objects.select_for_update(of=("self",)).filter(pk=run_id).first()
        if run is None or run.is_terminal or (run.heartbeat_at or run.created_at) >= stale_before:
            return "fresh"
        stale_for = round((now - (run.heartbeat_at or run.created_at)).total_seconds())
        if run.redrives + 1 >= max_attempts:
            give_up = True
        else:
            give_up = False
            Run.objects.filter(pk=run_id, status=run.status, redrives=run.redrives).update(
                redrives=run.redrives + 1, heartbeat_at=now
            )
            audit.record(
                tenant=run.tenant,
                actor=RUNNER,
                action="recon_run.redriven",
                obj=run,
                before={"status": run.status, "redrives": run.redrives, "attempts": run.attempts},
                after={"redrives": run.redrives + 1, "stale_for_s": stale_for},
            )
            if run.status == RunStatus.MATCHING:
                message = dispatch.compute(run_id, queue=compute_queue)
            else:
                queues = {"fetch_queue": fetch_queue, "compute_queue": compute_queue}
                message = dispatch.run_chord(run_id, run.kind, **queues)
            transaction.on_commit(message.apply_async)
    if give_up:
        failed = run_fail(
            run_id=run_id,
            error=(
                f"no heartbeat for {stale_for}s while {run.status}, after {run.redrives + 1} attempt(s)"
                f" (RUN_MAX_ATTEMPTS={max_attempts})"
            ),
            code="stale_heartbeat",
        )
        if not failed:
            return "fresh"
        metrics.RUNS_FAILED_STALE.labels(kind=run.kind).inc()
        return "failed"
    metrics.RUN_REDRIVES.labels(kind=run.kind, status=run.status).inc()
    log.warning(
        "recon_run_redriven",
        status=run.status,
        redrives=run.redrives + 1,
        attempts=run.attempts,
        stale_for_s=stale_for,
        **{"recon.run_id": run_id},
    )
    return "redriven"
