"""Apply a YAML configuration file (sources, reconciliations, ...): validated, idempotent, audited."""

import getpass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jfintech.audit import Actor
from reconciliation.ingestion.config_file import ConfigError, config_apply, load_document


class Command(BaseCommand):
    help = "Apply a configuration file (docs/config-file.md). Exit 1 with every error listed if invalid."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="validate and show what would change")

    def handle(self, *args, file, dry_run, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file", returncode=2)
        try:
            results = config_apply(document=load_document(path.read_text()), dry_run=dry_run,
                                   actor=Actor.for_system(f"apply_config:{getpass.getuser()}"))  # fmt: skip
        except ConfigError as exc:
            raise CommandError(exc.message) from exc
        prefix = "would apply" if dry_run else "applied"
        for section, counts in results.items():
            summary = ", ".join(f"{n} {k}" for k, n in counts.items())
            self.stdout.write(f"{prefix} {section}: {summary}")
