"""Sharded runs: above a configurable scope size the matching phase splits by a hash of one record
column (the shard column) into a second chord, so several workers share it; the outcome is
identical to the unsharded run.

    compute_reconciliation (the first chord's callback)
        └─ scope > RECON_SHARD_THRESHOLD and the rules have a shard column:
           chord([match_shard.si(run, i, n) for i in range(n)], finish_sharded_run.si(run))

- Identical outcome needs that no pass can pair, group or classify records with different values
  of the column: it must be among the keys of every pairing and aggregation pass and among the
  break keys (engine.shard_column; the account where it qualifies, else e.g. the reference of a
  two-way run keyed on it). Other rule sets run unsharded (logged). A three-way run splits by
  account only: its position checks are per account.
- A shard runs the engine on the records whose column hashes to it (engine.shard_filter) and
  commits its matches, breaks and exclusions together with its ``RunShard`` row. The row is claimed
  first (``INSERT … ON CONFLICT DO NOTHING``): a second delivery blocks on it until the first
  commits, then finds it and does nothing; if the first died, its transaction rolled back and the
  second does the work. Each shard proves conservation over its part.
- The finish task waits for every shard (retrying until the run's deadline, then failing the run),
  checks that the shards' parts add up to the whole scope, syncs the cases and completes the run
  through the same service as the unsharded path (runs.lifecycle.run_complete).
- A shard reads its part of the scope in the one scan of the records the engine makes anyway (the
  frozen multirange of ids and the column's hash, engine.shard_filter), never a join.
"""

from __future__ import annotations

import time
from collections import Counter

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from jfintech.observability.logging import get_logger
from reconciliation.matching import engine
from reconciliation.matching.models import RunShard
from reconciliation.matching.passes import parse_rules
from reconciliation.runs import dispatch
from reconciliation.runs import lifecycle as runs
from reconciliation.runs.models import SIDES_OF_KIND, Run, RunPart, RunStatus

log = get_logger(__name__)

SHARD_QUEUE = "reconciliation"


def shard_count_for(run: Run) -> int | None:
    """How many shards the run's matching phase gets, or None to run it in one piece."""
    count = settings.RECON_SHARD_COUNT
    if count < 2:
        return None
    scope = sum(RunPart.objects.filter(run=run).values_list("records", flat=True))
    if scope <= settings.RECON_SHARD_THRESHOLD:
        return None
    if engine.shard_column(run.kind, parse_rules(run.rule_version.rules)) is None:
        log.info(
            "recon_run_not_sharded",
            reason="no key that every pass and the break keys compare for equality",
            scope=scope,
            **{"recon.run_id": run.pk},
        )
        return None
    return count


def run_dispatch_shards(*, run_id: int, queue: str) -> str | None:
    """In the compute callback: "sharded" once the second chord is sent, None when the run is to be
    computed in one piece (or is not ready: the normal compute path says so)."""
    run = Run.objects.select_related("rule_version").get(pk=run_id)
    if run.is_terminal or runs.run_missing_sides(run):
        return None
    shard_count = shard_count_for(run)
    if shard_count is None:
        return None
    try:
        runs.run_begin_matching(run_id)  # -> matching, attempts + 1 (a redelivery re-sends the chord)
    except runs.Superseded:
        return "terminal"
    dispatch.shard_chord(run_id, shard_count, queue=queue).apply_async()
    log.info("recon_run_sharded", shards=shard_count, **{"recon.run_id": run_id})
    return "sharded"


_CLAIM_SHARD = """
INSERT INTO reconciliation_runshard (run_id, shard_no, shard_count, records_in_scope, matched, suggested,
    in_breaks, excluded, matches, breaks_by_type, timings, by_kind, conservation, worker, completed_at)
VALUES (%s, %s, %s, 0, 0, 0, 0, 0, 0, '{}', '{}', '[]', '{}', %s, now())
ON CONFLICT (run_id, shard_no) DO NOTHING RETURNING id
"""


def run_match_shard(*, run_id: int, shard_no: int, shard_count: int, worker: str = "") -> str:
    """One shard of a sharded run's matching phase: "done", "terminal" or "failed"."""
    run = Run.objects.select_related("rule_version", "tenant", "definition").get(pk=run_id)
    if run.is_terminal:
        return "terminal"
    if RunShard.objects.filter(run_id=run_id, shard_no=shard_no).exists():
        return "done"
    try:
        with runs.RunHeartbeat(run_id, (RunStatus.MATCHING,)), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_CLAIM_SHARD, [run_id, shard_no, shard_count, worker[:200]])
                claimed = cursor.fetchone()
            if claimed is None:
                return "done"
            result = engine.reconcile(
                runs.run_context(run, (shard_no, shard_count)), parse_rules(run.rule_version.rules)
            )
            RunShard.objects.filter(pk=claimed[0]).update(
                records_in_scope=result.records_in_scope,
                matched=result.matched,
                suggested=result.suggested,
                in_breaks=result.in_breaks,
                excluded=result.excluded,
                matches=result.matches,
                first_match_id=result.match_ids[0] if result.match_ids else None,
                last_match_id=result.match_ids[1] if result.match_ids else None,
                breaks_by_type=result.breaks_by_type,
                timings=result.timings,
                by_kind=[[kind, outcome, n] for (kind, outcome), n in result.by_kind.items()],
                conservation=result.conservation,
            )
            Run.objects.filter(pk=run_id, status=RunStatus.MATCHING).update(
                heartbeat_at=timezone.now(), progress_done=F("progress_done") + result.records_in_scope
            )
    except engine.ConservationError as exc:
        runs.run_fail(
            run_id=run_id,
            error=f"shard {shard_no}: {exc}",
            code="conservation",
            conservation=exc.conservation,
        )
        return "failed"
    log.info(
        "recon_shard_matched",
        shard=shard_no,
        shards=shard_count,
        records=result.records_in_scope,
        **{"recon.run_id": run_id},
    )
    return "done"


def run_finish_sharded(*, run_id: int) -> str:
    """The second chord's callback: "completed", "failed", "terminal", "missing" (a shard is not
    there yet: the task retries until the deadline) or "busy"."""
    run = Run.objects.select_related("rule_version", "tenant", "definition").get(pk=run_id)
    if run.is_terminal:
        return "terminal"
    shards = list(RunShard.objects.filter(run_id=run_id).order_by("shard_no"))
    expected = shards[0].shard_count if shards else None
    if not shards or len(shards) < expected:
        if timezone.now() < run.deadline:
            return "missing"
        runs.run_fail(run_id=run_id, error="shards missing at the deadline", code="shards_missing")
        return "failed"
    since = (timezone.now() - (run.fetched_at or run.created_at)).total_seconds()
    started = time.perf_counter() - since  # the compute phase: from the dispatch to now
    try:
        with runs.RunHeartbeat(run_id, (RunStatus.MATCHING,)), transaction.atomic():
            if not runs.run_lock_for_compute(run_id):
                return "busy"
            if Run.objects.filter(pk=run_id).values_list("status", flat=True).get() != RunStatus.MATCHING:
                return "terminal"
            result = _combined(run, shards)
            _balanced_positions(run)
            timings = runs.run_complete(run, result, started)
    except engine.ConservationError as exc:
        runs.run_fail(run_id=run_id, error=str(exc), code="conservation", conservation=exc.conservation)
        return "failed"
    except runs.Superseded:
        return "terminal"
    runs.run_observe_completed(run, result, timings)
    return "completed"


def _combined(run: Run, shards: list[RunShard]) -> engine.EngineResult:
    """The shards' outcomes as one EngineResult, and conservation over the whole run, with the same
    fields as an unsharded run's (engine._conserve) plus the number of shards.

    Each shard proved, in its own transaction, that every record of its part of the scope is in
    exactly one outcome (its ``conservation``: strays, double counts and the slots each table got
    are summed here). The parts are disjoint by construction (a record's shard is a function of its
    shard column, and records are immutable), so the whole run conserves exactly when the parts
    add up to the scope: a scope row in no part shows as a difference of counts."""
    result = engine.EngineResult()
    breaks: Counter = Counter()
    timings: Counter = Counter()
    by_kind: Counter = Counter()
    for shard in shards:
        result.records_in_scope += shard.records_in_scope
        result.matched += shard.matched
        result.suggested += shard.suggested
        result.in_breaks += shard.in_breaks
        result.excluded += shard.excluded
        result.matches += shard.matches
        breaks.update(shard.breaks_by_type)
        timings.update(shard.timings)
        by_kind.update({(kind, outcome): n for kind, outcome, n in shard.by_kind})
        result.timings[f"shard:{shard.shard_no}"] = round(sum(shard.timings.values()), 4)
    spans = [(s.first_match_id, s.last_match_id) for s in shards if s.first_match_id is not None]
    if spans:
        result.match_ids = (min(first for first, _ in spans), max(last for _, last in spans))
    result.breaks_by_type = dict(sorted(breaks.items()))
    result.by_kind = dict(by_kind)
    result.timings |= {k: round(v, 4) for k, v in timings.items()}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(records), 0)::bigint FROM reconciliation_run_scope WHERE run_id = %s",
            [run.pk],
        )
        in_scope = cursor.fetchone()[0]
    proofs = [shard.conservation for shard in shards]
    accounted = sum(p["accounted"] for p in proofs)
    stray = sum(p["stray"] for p in proofs)
    doubled = sum(p["double_counted"] for p in proofs)
    written: Counter = Counter()
    for p in proofs:
        written.update(p["written"])
    totals = result.matched + result.suggested + result.in_breaks + result.excluded
    result.conservation = {
        "in_scope": in_scope,
        "matched": result.matched,
        "suggested": result.suggested,
        "in_breaks": result.in_breaks,
        "excluded": result.excluded,
        "accounted": accounted,
        "unaccounted": in_scope - accounted,
        "stray": stray,
        "double_counted": doubled,
        "written": {key: written[key] for key in ("match_items", "excluded", "in_breaks")},
        "shards": len(shards),
        "ok": bool(
            all(p["ok"] for p in proofs)
            and in_scope == result.records_in_scope == accounted == totals
            and not stray
            and not doubled
        ),
    }
    if not result.conservation["ok"]:
        raise engine.ConservationError(result.conservation)
    return result


def _balanced_positions(run: Run) -> None:
    """The engine's ``_pos`` as the case sync reads it (which accounts and instruments were checked
    and balanced), rebuilt from what the shards wrote: their own temporary tables are gone."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE TEMP TABLE _pos ON COMMIT DROP AS
            SELECT k.account, k.instrument, NOT EXISTS (
                SELECT 1 FROM reconciliation_break b
                WHERE b.run_id = %(run)s AND b.break_type = 'position_break'
                  AND b.account = k.account AND b.instrument = k.instrument) AS balanced
            FROM (
                SELECT r.account, r.instrument FROM reconciliation_record r
                WHERE r.id <@ {engine.scope_ids_sql(side="position")} AND r.tenant_id = %(tenant)s
                  AND r.business_date BETWEEN %(date_from)s AND %(date_to)s
                UNION
                SELECT account, instrument FROM reconciliation_run_trade_flow
                WHERE run_id = %(run)s AND business_date <= %(as_of)s
            ) k
            """,
            {
                "run": run.pk,
                "as_of": run.as_of,
                "tenant": run.tenant_id,
                "date_from": run.date_from,
                "date_to": run.date_to,
            },
        )


def run_execute_sharded_inline(run: Run, shard_count: int) -> Run:
    """A sharded run in this process, shard after shard (no chord): for the tests that compare it
    with the unsharded run and for the benchmark's baseline. Same services, same effects."""
    from reconciliation.runs import services  # the fetch; services never import this module

    for side in SIDES_OF_KIND[run.kind]:
        services.run_fetch_side(run_id=run.pk, side=side)
    runs.run_begin_matching(run.pk)
    for shard_no in range(shard_count):
        run_match_shard(run_id=run.pk, shard_no=shard_no, shard_count=shard_count)
    outcome = run_finish_sharded(run_id=run.pk)
    if outcome not in ("completed", "failed"):
        raise RuntimeError(f"run {run.pk}: finish returned {outcome}")
    run.refresh_from_db()
    return run
