"""Thin Celery tasks of a run: ids in, services do the work, every task idempotent.

The chord is flat, exactly as the issue has it::

    chord([fetch_positions.si(run_id), fetch_trades.si(run_id), fetch_settlements.si(run_id)],
          compute_reconciliation.si(run_id))        # three-way; two-way: fetch_left, fetch_right

Headers run on the ``fetch`` queue (I/O-bound: the threads pool overlaps them), the callback on
``reconciliation``. Headers write to PostgreSQL and return nothing. The callback checks that every
part is present and retries until the run's deadline if one is not (a redelivered header can move
the chord counter early). ``link_error`` and the reaper fail a run loudly.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import OperationalError

from jfintech.observability import bind_run_context
from reconciliation.matching import sharding
from reconciliation.runs import dispatch, lifecycle, services
from reconciliation.runs.dispatch import COMPUTE_QUEUE, FETCH_QUEUE
from reconciliation.runs.models import Run, Side

_PAST_TIME_LIMIT = (
    "the compute passed its soft time limit ({}s, CELERY_TASK_SOFT_TIME_LIMIT): a statement did not"
    " return (a stalled database connection, a lock never released) or the scope is too large for it"
)

# Transient database trouble (a failover, a dropped connection) is retried, not fatal.
_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 2, "retry_backoff_max": 30, "max_retries": 5}


def _bind(run_id: int) -> None:
    bind_run_context(run_id=run_id)


def _fetch(run_id: int, side: str) -> None:
    _bind(run_id)
    services.run_fetch_side(run_id=run_id, side=side)


@shared_task(name="reconciliation.fetch_positions", acks_late=True, **_RETRY)
def fetch_positions(run_id: int) -> None:
    _fetch(run_id, Side.POSITION)


@shared_task(name="reconciliation.fetch_trades", acks_late=True, **_RETRY)
def fetch_trades(run_id: int) -> None:
    _fetch(run_id, Side.LEFT)


@shared_task(name="reconciliation.fetch_settlements", acks_late=True, **_RETRY)
def fetch_settlements(run_id: int) -> None:
    _fetch(run_id, Side.RIGHT)


@shared_task(name="reconciliation.fetch_left", acks_late=True, **_RETRY)
def fetch_left(run_id: int) -> None:
    _fetch(run_id, Side.LEFT)


@shared_task(name="reconciliation.fetch_right", acks_late=True, **_RETRY)
def fetch_right(run_id: int) -> None:
    _fetch(run_id, Side.RIGHT)


@shared_task(
    name="reconciliation.compute_reconciliation",
    bind=True,
    acks_late=True,
    max_retries=None,
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=30,
)
def compute_reconciliation(self, run_id: int) -> str:
    _bind(run_id)
    # A large scope's matching phase goes to a second chord of shards (matching.sharding), on the
    # queue this callback was routed to.
    queue = (self.request.delivery_info or {}).get("routing_key") or COMPUTE_QUEUE
    sharded = sharding.run_dispatch_shards(run_id=run_id, queue=queue)
    if sharded:
        return sharded
    try:
        outcome = services.run_compute(run_id=run_id)
    except SoftTimeLimitExceeded:
        # A statement that never returns (a stalled database connection: no server-side timeout
        # ends a stopped backend's statement) ends here; the run fails with what happened.
        lifecycle.run_fail(run_id=run_id, error=_PAST_TIME_LIMIT.format(settings.CELERY_TASK_SOFT_TIME_LIMIT),
                           code="time_limit")  # fmt: skip
        raise
    if outcome in ("missing", "busy"):
        # Not yet: a fetch part is missing, or another delivery is computing. run_compute fails the
        # run itself once the deadline has passed, so these retries are bounded.
        raise self.retry(countdown=1 if outcome == "missing" else 5)
    return outcome


@shared_task(name="reconciliation.run_failed", acks_late=True, **_RETRY)
def run_failed(run_id: int, *args) -> None:
    """link_error of the chord: a header or the callback raised. Fails the run if it is not terminal."""
    _bind(run_id)
    lifecycle.run_fail(
        run_id=run_id, error="a task of the run raised (see the task logs for the trace)", code="task_error"
    )


@shared_task(name="reconciliation.reap_stuck_runs", acks_late=True, **_RETRY)
def reap_stuck_runs() -> dict[str, list[int]]:
    """Every minute (beat): fail the runs past their deadline, re-drive those whose heartbeat went
    stale (or fail them after RUN_MAX_ATTEMPTS)."""
    return {"past_deadline": services.runs_reap(), **services.runs_redrive_stale()}


@shared_task(name="reconciliation.start_scheduled_run", acks_late=True, **_RETRY)
def start_scheduled_run(definition_id: int) -> int | None:
    """Beat's entry point: one run per slot of the schedule (the slot is the run's request key, so a
    redelivered tick, or a slot a restarted beat sends again, starts nothing new); a tick while a
    run is in flight is logged and skipped."""
    return services.run_start_scheduled(definition_id=definition_id)


def run_chord(run_id: int, *, fetch_queue: str = FETCH_QUEUE, compute_queue: str = COMPUTE_QUEUE):
    """The run's chord (dispatch.run_chord; the queues route a test's run to a private worker)."""
    kind = Run.objects.only("kind").get(pk=run_id).kind
    return dispatch.run_chord(run_id, kind, fetch_queue=fetch_queue, compute_queue=compute_queue)
