"""Celery discovers ``reconciliation.tasks``; the tasks live with the code they drive."""

from reconciliation.matching.tasks import execute_simulation  # matching depth: dry runs, impact
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
    "reap_stuck_runs",
    "run_failed",
    "start_scheduled_run",
]
