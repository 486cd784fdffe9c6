"""Every task keeps the queue it had when the queue was a task attribute (now CELERY_TASK_ROUTES),
and no task declares the deprecated ``queue`` attribute (16 CDeprecationWarnings per test run)."""

from config.celery import app
from reconciliation.matching import sharding, simulation
from reconciliation.runs import dispatch

# The queues the tasks declared with ``queue=`` before the routes (git show 946b971).
QUEUE_OF = {
    "api.purge_idempotency_keys": "default",
    "audit.verify_chains": "default",
    "exceptions.deliver_webhook": "default",
    "exceptions.flag_sla_breaches": "default",
    "health.pipeline_complete": "default",  # never had one: sent with .set(queue=...) or default
    "health.pipeline_failed": "default",
    "health.pipeline_probe": "default",
    "ingestion.ensure_partitions_ahead": "default",
    "ingestion.fail_abandoned_batches": "default",
    "reporting.deliver_report": "default",
    "reporting.generate_subscription": "default",
    "reporting.run_export": "default",
    "filings.remind_deadlines": "default",
    "reconciliation.compute_reconciliation": dispatch.COMPUTE_QUEUE,
    "reconciliation.execute_simulation": simulation.SIMULATION_QUEUE,
    "reconciliation.fetch_left": dispatch.FETCH_QUEUE,
    "reconciliation.fetch_positions": dispatch.FETCH_QUEUE,
    "reconciliation.fetch_right": dispatch.FETCH_QUEUE,
    "reconciliation.fetch_settlements": dispatch.FETCH_QUEUE,
    "reconciliation.fetch_trades": dispatch.FETCH_QUEUE,
    "reconciliation.finish_sharded_run": sharding.SHARD_QUEUE,
    "reconciliation.match_shard": sharding.SHARD_QUEUE,
    "reconciliation.reap_stuck_runs": dispatch.COMPUTE_QUEUE,
    "reconciliation.run_failed": dispatch.COMPUTE_QUEUE,
    "reconciliation.start_scheduled_run": dispatch.COMPUTE_QUEUE,
}


def _tasks() -> dict:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def _routed_queue(name: str, **options) -> str:
    return app.amqp.router.route(options, name)["queue"].name


def test_every_registered_task_routes_to_its_queue():
    tasks = _tasks()
    assert set(tasks) == set(QUEUE_OF), "a task was added or removed: route it in CELERY_TASK_ROUTES"
    assert {name: _routed_queue(name) for name in tasks} == QUEUE_OF


def test_a_queue_given_when_sending_still_wins():
    # A test's private worker and a re-driven run's chord name their queue when sending.
    assert _routed_queue("reconciliation.fetch_left", queue="private-fetch") == "private-fetch"


def test_no_task_declares_the_deprecated_queue_attribute():
    assert {name for name, task in _tasks().items() if getattr(task, "queue", None)} == set()
