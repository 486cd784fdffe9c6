from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class JfintechConfig(AppConfig):
    name = "jfintech"
    verbose_name = "Platform"

    def ready(self):
        # Instrument before the first request handler loads its middleware. The tracer provider
        # itself is installed later, after any fork (gunicorn post_fork, Celery process init).
        import jfintech.api.schema
        import jfintech.login_throttle  # noqa: F401 (connects the login failure counter)
        from jfintech.api.metrics import initialise_queue_full_refusals
        from jfintech.db.roles import post_migrate_grant
        from jfintech.observability import metrics, tracing
        from jfintech.scheduling import post_migrate_ensure_schedules

        tracing.instrument()
        metrics.install_db_instrumentation()
        metrics.initialise_db_pool_errors(settings.DATABASES)
        initialise_queue_full_refusals(settings.CELERY_TASK_QUEUES_NAMES)
        # After every migrate (all apps' tables exist by then): the runtime role's grants on
        # every table, and the beat schedules declared in settings.
        post_migrate.connect(post_migrate_grant, sender=self, dispatch_uid="jfintech_runtime_grants")
        post_migrate.connect(post_migrate_ensure_schedules, sender=self, dispatch_uid="jfintech_schedules")
