"""Beat schedules declared in settings and written to django-celery-beat after every migrate.

``settings.PERIODIC_TASKS`` maps a schedule name to::

    {"task": "audit.verify_chains", "crontab": {"minute": "17", "hour": "3"},
     "queue": "default", "expire_seconds": 3600}

``ensure_schedules()`` creates or updates each PeriodicTask by name (idempotent; runs from
``post_migrate``, so a deploy's migrate job keeps beat in step with the code). ``expire_seconds``
is the per-run expiry (a run that could not start within it is dropped, not run late); never use
django-celery-beat's ``expires``, an absolute date that switches the task off for good.
Crontabs are in UTC. Schedules removed from settings are disabled, not deleted, so their
history stays visible in the admin.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import transaction

from jfintech.observability.logging import get_logger

log = get_logger(__name__)

MANAGED_DESCRIPTION = "managed by settings.PERIODIC_TASKS"
_CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def ensure_schedules(schedules: dict | None = None) -> list[str]:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    schedules = settings.PERIODIC_TASKS if schedules is None else schedules
    with transaction.atomic():
        for name, spec in schedules.items():
            cron = {f: str(spec["crontab"].get(f, "*")) for f in _CRONTAB_FIELDS}
            crontab = CrontabSchedule.objects.filter(timezone="UTC", **cron).first()
            if crontab is None:
                crontab = CrontabSchedule.objects.create(timezone="UTC", **cron)
            PeriodicTask.objects.update_or_create(
                name=name,
                defaults={
                    "task": spec["task"],
                    "crontab": crontab,
                    "interval": None,
                    "queue": spec.get("queue", "default"),
                    "expire_seconds": spec["expire_seconds"],
                    "expires": None,
                    "kwargs": json.dumps(spec.get("kwargs", {})),
                    "enabled": spec.get("enabled", True),
                    "description": MANAGED_DESCRIPTION,
                },
            )
        stale = PeriodicTask.objects.filter(description=MANAGED_DESCRIPTION, enabled=True).exclude(
            name__in=list(schedules)
        )
        stale.update(enabled=False)
    log.info("beat_schedules_ensured", schedules=sorted(schedules))
    return sorted(schedules)


def post_migrate_ensure_schedules(sender, using="default", plan=None, **kwargs) -> None:
    # Only once per migrate, after the last app (the beat tables must exist), never on a
    # test database flush without migrations.
    if sender.name != "jfintech" or using != "default":
        return
    ensure_schedules()
