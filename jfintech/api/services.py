"""Writes of the API layer: housekeeping of stored idempotent responses."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jfintech.api.models import IdempotencyKey
from jfintech.observability.logging import get_logger

log = get_logger(__name__)


def idempotency_keys_purge(*, older_than_hours: int | None = None, batch_size: int = 5000) -> int:
    """Delete stored responses older than the TTL, in short batches (no long lock on the table)."""
    hours = older_than_hours if older_than_hours is not None else settings.IDEMPOTENCY_KEY_TTL_HOURS
    if hours < 24:
        raise ValueError("idempotency keys are kept at least 24 hours")
    cutoff = timezone.now() - timedelta(hours=hours)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                IdempotencyKey.objects.filter(created_at__lt=cutoff)
                .order_by("id")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            deleted += IdempotencyKey.objects.filter(id__in=ids).delete()[0]
    log.info("idempotency_keys_purged", deleted=deleted, cutoff=cutoff.isoformat())
    return deleted
