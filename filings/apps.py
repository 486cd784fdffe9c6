from django.apps import AppConfig


class FilingsConfig(AppConfig):
    name = "filings"
    verbose_name = "Regulatory filings"

    def ready(self):
        from filings import config, intake, tasks  # noqa: F401  (Celery registers the tasks)

        config.register()  # the `filings` section of manage.py apply_config
        intake.register()  # the loaders of ingestion's parties and cash_transactions kinds
