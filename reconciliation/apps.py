from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "Reconciliation"

    def ready(self):
        from exceptions import decisions as case_decisions
        from reconciliation.ingestion import tasks  # noqa: F401  (Celery registers ingestion's tasks)
        from reconciliation.matching import decisions
        from reconciliation.runs import config_section  # noqa: F401  (apply_config's reconciliations)

        # A final decision on a case reaches its records through this (exceptions never imports us).
        case_decisions.register(decisions.RecordEffects())
