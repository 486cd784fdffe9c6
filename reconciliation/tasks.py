"""Celery discovers ``reconciliation.tasks``; the tasks live with the code they drive."""

from reconciliation.matching.tasks import (  # matching depth: simulations, sharded runs
    execute_simulation,
    finish_sharded_run,
    match_shard,
)
from reconciliation.runs.tasks import (  # runs: the chord, the reaper, beat's entry point
    compute_reconciliation,
    fetch_left,
    fetch_positions,
    fetch_right,
    fetch_settlements,
    fetch_trades,
    reap_stuck_runs,
    run_failed,
    start_scheduled_run,
)

__all__ = [
    "compute_reconciliation",
    "execute_simulation",
    "fetch_left",
    "fetch_positions",
    "fetch_right",
    "fetch_settlements",
    "fetch_trades",
    "finish_sharded_run",
    "match_shard",
    "reap_stuck_runs",
    "run_failed",
    "start_scheduled_run",
]
