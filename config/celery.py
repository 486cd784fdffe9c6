"""The Celery app. Configuration lives in Django settings under the CELERY_ namespace."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("jfintech")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("default", "ingest", "reconciliation", "fetch")]
# Each task's queue is in settings.CELERY_TASK_ROUTES; anything not routed lands on "default".
app.conf.task_default_queue = "default"
app.autodiscover_tasks()

# Worker-side observability (logging, tracing after fork, metrics port) is wired by signal
# receivers in jfintech.observability.celery, imported here so every worker and beat has them.
import jfintech.observability.celery  # noqa: E402,F401
