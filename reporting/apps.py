from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting"

    def ready(self):
        from exceptions.signals import webhook_failed

        webhook_failed.connect(_on_desk_webhook_failed, dispatch_uid="reporting.webhook_failed")


def _on_desk_webhook_failed(sender, delivery, error, **kwargs):
    from reporting.services import delivery_failed_downstream

    delivery_failed_downstream(webhook_delivery_id=delivery.pk, error=error)
