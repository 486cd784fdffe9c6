"""Thin tasks of reporting: a subscription's tick (beat) and one delivery (retried with backoff)."""

import random

from celery import shared_task
from django.utils import timezone

from reporting import services


@shared_task(name="reporting.generate_subscription", acks_late=True)
def generate_subscription(subscription_id: int) -> list[int]:
    # The tick is the minute beat sent it in: a redelivered message is the same tick (idempotent).
    scheduled_for = timezone.now().replace(second=0, microsecond=0)
    return services.subscription_generate(subscription_id=subscription_id, scheduled_for=scheduled_for)


@shared_task(name="reporting.deliver_report", bind=True, acks_late=True, max_retries=None)
def deliver_report(self, delivery_id: int, backoff_s: float | None = None, max_attempts: int | None = None):
    backoff_s = services.DELIVERY_BACKOFF_S if backoff_s is None else backoff_s
    max_attempts = services.DELIVERY_MAX_ATTEMPTS if max_attempts is None else max_attempts
    final = self.request.retries + 1 >= max_attempts
    try:
        return services.delivery_send(delivery_id=delivery_id, final_attempt=final, max_attempts=max_attempts)
    except services.DeliveryNotMade as exc:
        countdown = backoff_s * (2**self.request.retries) * (1 + random.random() / 4)  # noqa: S311
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="reporting.run_export", acks_late=True)
def run_export(job_id: int) -> int | None:
    job = services.export_job_run(job_id=job_id)
    return job.rows_done if job else None
