"""Verify an auditor pack: every file's SHA-256 against the manifest, the manifest's signature and
the tenant's audit chain. Exits non-zero naming each changed file or the broken chain."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from reporting.packs import verify_pack


class Command(BaseCommand):
    help = "Verify an auditor pack ZIP (hashes, signature, audit chain)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="the pack's path")

    def handle(self, *args, file, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no such file: {file}")
        check = verify_pack(path.read_bytes())
        for problem in check.problems:
            self.stderr.write(f"FAIL {problem}")
        if not check.ok:
            raise CommandError(f"pack verification FAILED: {path.name}: " + "; ".join(check.problems))
        self.stdout.write(
            self.style.SUCCESS(f"pack verified: {path.name}: {check.files} files, chain intact")
        )
