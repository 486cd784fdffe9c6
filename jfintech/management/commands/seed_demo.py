"""Seed the demo: each step in settings.DEMO_SEEDERS runs in order and prints what it made.

Steps are dotted paths so that domain apps contribute their own demo data without the core
importing them.
"""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string


class Command(BaseCommand):
    help = "Create the demo users, tenants and data (idempotent; safe to run on every start)."

    def handle(self, *args, **options):
        for dotted in settings.DEMO_SEEDERS:
            import_string(dotted)(self.stdout)
