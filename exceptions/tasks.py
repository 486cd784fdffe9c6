"""Thin tasks of the exceptions app: the SLA sweep (beat) and webhook delivery (retried with backoff)."""

import random

from celery import shared_task

from exceptions import services


@shared_task(name="exceptions.flag_sla_breaches", acks_late=True)
def flag_sla_breaches() -> int:
    return services.cases_flag_sla_breaches()


@shared_task(name="exceptions.deliver_webhook", bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self, delivery_id: int, backoff_s: float | None = None, max_attempts: int | None = None):
    backoff_s = services.WEBHOOK_BACKOFF_S if backoff_s is None else backoff_s
    max_attempts = services.WEBHOOK_MAX_ATTEMPTS if max_attempts is None else max_attempts
    final = self.request.retries + 1 >= max_attempts
    try:
        return services.webhook_deliver(delivery_id=delivery_id, final_attempt=final)
    except services.WebhookNotDelivered as exc:
        # Exponential backoff with jitter, so many tenants' retries do not arrive in lockstep.
        countdown = backoff_s * (2**self.request.retries) * (1 + random.random() / 4)  # noqa: S311
        raise self.retry(exc=exc, countdown=countdown) from exc
