"""Seed the demo: each step in settings.DEMO_SEEDERS runs in order and prints what it made.

Steps are dotted paths so that domain apps contribute their own demo data without the core
importing them.
"""

import structlog
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from jfintech.observability import tracing


class Command(BaseCommand):
    help = "Create the demo users, tenants and data (idempotent; safe to run on every start)."

    def handle(self, *args, **options):
        # The demo's runs are traced like any other (their trace id on the run, its cases and logs).
        tracing.setup_after_fork(role="demo-seed")
        # The demo seeds failures on purpose (a run whose fetch timed out): every line logged while
        # seeding says so, so an error-level line here never reads like a real failure.
        with structlog.contextvars.bound_contextvars(demo_data="seeded by make demo; not a real event"):
            for dotted in settings.DEMO_SEEDERS:
                import_string(dotted)(self.stdout)
