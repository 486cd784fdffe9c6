"""The messages that drive a run, built by task name.

The services that send them (run_start, the reaper's re-drive, the sharded compute, a simulation)
never import the task modules, which import those services: that import was the five-file circle
runs.services → runs.tasks → matching.sharding → matching.tasks → matching.simulation →
runs.services (runs/tests/test_import_graph.py keeps it gone). Every name here is checked against the
Celery app's registry by that test, so a typo is a failing test, not a message nobody consumes.
"""

from __future__ import annotations

from celery import chord, signature

from reconciliation.runs.models import DefinitionKind

FETCH_QUEUE = "fetch"
COMPUTE_QUEUE = "reconciliation"

FETCH_TASKS = {
    DefinitionKind.THREE_WAY: (
        "reconciliation.fetch_positions",
        "reconciliation.fetch_trades",
        "reconciliation.fetch_settlements",
    ),
    DefinitionKind.TWO_WAY: ("reconciliation.fetch_left", "reconciliation.fetch_right"),
}
COMPUTE_TASK = "reconciliation.compute_reconciliation"
RUN_FAILED_TASK = "reconciliation.run_failed"
MATCH_SHARD_TASK = "reconciliation.match_shard"
FINISH_SHARDED_TASK = "reconciliation.finish_sharded_run"
SIMULATION_TASK = "reconciliation.execute_simulation"

TASK_NAMES = (
    *FETCH_TASKS[DefinitionKind.THREE_WAY],
    *FETCH_TASKS[DefinitionKind.TWO_WAY],
    COMPUTE_TASK,
    RUN_FAILED_TASK,
    MATCH_SHARD_TASK,
    FINISH_SHARDED_TASK,
    SIMULATION_TASK,
)


def task(name: str, *args, queue: str):
    """An immutable signature of the task ``name`` on ``queue``."""
    return signature(name, args=args, immutable=True, queue=queue)


def _failing_the_run(sig, run_id: int, queue: str):
    sig.link_error(task(RUN_FAILED_TASK, run_id, queue=queue))
    return sig


def run_chord(run_id: int, kind: str, *, fetch_queue: str = FETCH_QUEUE, compute_queue: str = COMPUTE_QUEUE):
    """The run's chord: ``chord([fetch_<side>(run)...], compute(run))``, the callback failing the run
    loudly if a part raises (the queues are parameters so a test can route a run to a private worker)."""
    callback = _failing_the_run(task(COMPUTE_TASK, run_id, queue=compute_queue), run_id, compute_queue)
    return chord([task(name, run_id, queue=fetch_queue) for name in FETCH_TASKS[kind]], callback)


def compute(run_id: int, *, queue: str = COMPUTE_QUEUE):
    """The compute alone (a re-drive of a run whose parts are all fetched)."""
    return _failing_the_run(task(COMPUTE_TASK, run_id, queue=queue), run_id, queue)


def shard_chord(run_id: int, shard_count: int, *, queue: str = COMPUTE_QUEUE):
    """The sharded matching phase: one task per shard, then the finish, which fails the run loudly
    if it raises."""
    callback = _failing_the_run(task(FINISH_SHARDED_TASK, run_id, queue=queue), run_id, queue)
    return chord(
        [task(MATCH_SHARD_TASK, run_id, i, shard_count, queue=queue) for i in range(shard_count)], callback
    )
