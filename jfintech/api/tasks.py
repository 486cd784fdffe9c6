from celery import shared_task

from jfintech.api import services


@shared_task(name="api.purge_idempotency_keys", acks_late=True)
def purge_idempotency_keys() -> int:
    return services.idempotency_keys_purge()
