from django.apps import AppConfig


class JfintechConfig(AppConfig):
    name = "jfintech"
    verbose_name = "Platform"

    def ready(self):
        # Instrument before the first request handler loads its middleware. The tracer provider
        # itself is installed later, after any fork (gunicorn post_fork, Celery process init).
        from jfintech.observability import tracing

        tracing.instrument()
