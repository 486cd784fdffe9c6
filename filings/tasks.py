"""Thin Celery tasks of the filings app."""

from celery import shared_task

from filings import services


@shared_task(name="filings.remind_deadlines", acks_late=True)
def remind_deadlines() -> dict:
    return services.deadlines_remind()
