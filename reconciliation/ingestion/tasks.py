"""Ingestion's periodic tasks: partitions created ahead of the data (own short transactions), and
batches whose loading process died closed as failed."""

from celery import shared_task

from reconciliation.ingestion import services


@shared_task(name="ingestion.ensure_partitions_ahead", acks_late=True)
def ensure_partitions_ahead() -> int:
    return len(services.partitions_ensure_ahead())


@shared_task(name="ingestion.fail_abandoned_batches", acks_late=True)
def fail_abandoned_batches() -> int:
    return len(services.batches_fail_abandoned())
