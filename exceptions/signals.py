"""What the desk tells other apps, without importing them (reporting reads the desk, not the reverse)."""

from django.dispatch import Signal

# Sent once, after the outbox gave up on a webhook POST (its final attempt failed); kwargs:
# ``delivery`` (the WebhookDelivery, status failed) and ``error``. Reporting turns a failed report
# webhook into a failed report delivery with its desk case (reporting.services.delivery_failed_downstream).
webhook_failed = Signal()
