"""Thin Celery tasks of matching depth: ids in, services do the work, every task idempotent."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from reconciliation.matching import simulation

_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 2, "retry_backoff_max": 30, "max_retries": 5}


@shared_task(
    name="reconciliation.execute_simulation", queue=simulation.SIMULATION_QUEUE, acks_late=True, **_RETRY
)
def execute_simulation(report_id: int) -> str:
    return simulation.simulation_execute(report_id=report_id)
