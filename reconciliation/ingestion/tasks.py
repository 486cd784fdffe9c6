"""Ingestion's periodic task: partitions created ahead of the data (own short transactions)."""

from celery import shared_task

from reconciliation.ingestion import services


@shared_task(name="ingestion.ensure_partitions_ahead", acks_late=True)
def ensure_partitions_ahead() -> int:
    return len(services.partitions_ensure_ahead())
