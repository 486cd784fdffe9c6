"""Thin Celery tasks of matching depth: ids in, services do the work, every task idempotent."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from jfintech.observability import bind_run_context
from reconciliation.matching import sharding, simulation

_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 2, "retry_backoff_max": 30, "max_retries": 5}


@shared_task(name="reconciliation.execute_simulation", acks_late=True, **_RETRY)
def execute_simulation(report_id: int) -> str:
    return simulation.simulation_execute(report_id=report_id)


@shared_task(name="reconciliation.match_shard", acks_late=True, bind=True, **_RETRY)
def match_shard(self, run_id: int, shard_no: int, shard_count: int) -> str:
    bind_run_context(run_id=run_id)
    return sharding.run_match_shard(
        run_id=run_id, shard_no=shard_no, shard_count=shard_count, worker=self.request.hostname or ""
    )


@shared_task(
    name="reconciliation.finish_sharded_run",
    bind=True,
    acks_late=True,
    max_retries=None,
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=30,
)
def finish_sharded_run(self, run_id: int) -> str:
    bind_run_context(run_id=run_id)
    outcome = sharding.run_finish_sharded(run_id=run_id)
    if outcome in ("missing", "busy"):
        # A shard is not committed yet (a redelivered shard can move the chord counter early), or
        # another delivery is finishing: bounded by the run's deadline, as for the first chord.
        raise self.retry(countdown=1 if outcome == "missing" else 5)
    return outcome
