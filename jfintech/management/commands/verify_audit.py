"""Verify the audit trail: every chain's hashes, signatures and signed head.

Exits 0 when every chain verifies; otherwise non-zero, naming the first bad event of each broken
chain (``chain acme: BROKEN at event id=123 seq=45: content does not match its hash``).
"""

from django.core.management.base import BaseCommand, CommandError

from jfintech.audit.services import audit_chains_verify
from jfintech.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Verify the tamper-evident audit chains (all tenants, or one with --tenant SLUG)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", help="the tenant's slug (default: every tenant and the platform chain)"
        )

    def handle(self, *args, tenant=None, **options):
        tenants = None
        if tenant:
            found = Tenant.objects.filter(slug=tenant).first()
            if found is None:
                raise CommandError(f"no tenant '{tenant}'")
            tenants = [found]
        reports = audit_chains_verify(tenants=tenants)
        broken = [r for r in reports if not r.ok]
        for report in reports:
            self.stdout.write(report.describe())
        if broken:
            raise CommandError("audit verification FAILED: " + "; ".join(r.describe() for r in broken))
        self.stdout.write(self.style.SUCCESS(f"audit verified: {len(reports)} chain(s)"))
