from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "Reconciliation"

    def ready(self):
        from reconciliation.ingestion import tasks  # noqa: F401  (Celery registers ingestion's tasks)
        from reconciliation.runs import config_section  # noqa: F401  (apply_config's reconciliations)
