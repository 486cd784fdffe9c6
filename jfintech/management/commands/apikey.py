"""API keys from the command line, for an integration developer without the admin.

    python manage.py apikey create --tenant acme --role integration --name erp
    python manage.py apikey list --tenant acme
    python manage.py apikey revoke --tenant acme (--name erp | --prefix 1a2b3c4d5e6f)

``create`` prints the key (``<prefix>.<secret>``) once, on its own line, for
``Authorization: Api-Key <key>``; only its hash is stored, so it cannot be shown again (revoke and
create another). The services (``api_key_create``, ``api_key_revoke``) act as the CLI's system
actor, which names the OS user, and audit each change.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy import selectors, services
from jfintech.tenancy.models import Role, Tenant


class Command(BaseCommand):
    help = "Create, list or revoke a tenant's API keys (the secret is printed once, at creation)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key and print it once")
        create.add_argument("--tenant", required=True, help="tenant slug")
        create.add_argument("--name", required=True, help="what the key is for, e.g. erp-nightly")
        create.add_argument("--role", default=Role.INTEGRATION, choices=Role.values)
        listing = sub.add_parser("list", help="list a tenant's keys (never their secrets)")
        listing.add_argument("--tenant", required=True)
        revoke = sub.add_parser("revoke", help="revoke a key: it is refused from the next request")
        revoke.add_argument("--tenant", required=True)
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("--name", help="the active key of that name")
        which.add_argument("--prefix", help="the key's prefix (the part before the dot)")

    def handle(self, *args, action, tenant, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant {tenant!r}.")
        try:
            getattr(self, f"_{action}")(found, **options)
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        except ValidationError as exc:
            raise CommandError(f"invalid: {'; '.join(exc.messages)}") from exc

    def _create(self, tenant, *, name, role, **_):
        created = services.api_key_create(tenant=tenant, actor=Actor.for_cli("apikey"), name=name, role=role)
        self.stderr.write(
            f"API key '{name}' ({role}) created for tenant {tenant.slug}; id {created.key.pk}. "
            "The key is shown once, below; store it now (only its hash is kept):"
        )
        self.stdout.write(created.plaintext)

    def _list(self, tenant, **_):
        self.stdout.write("id\tprefix\tname\trole\tcreated_at\tlast_used_at\trevoked_at")
        for key in selectors.api_key_list(tenant=tenant):
            cells = (key.pk, key.prefix, key.name, key.role, key.created_at, key.last_used_at, key.revoked_at)
            self.stdout.write("\t".join("-" if c is None else str(c) for c in cells))

    def _revoke(self, tenant, *, name=None, prefix=None, **_):
        keys = selectors.api_key_list(tenant=tenant)
        key = (
            keys.filter(prefix=prefix).first()
            if prefix
            else keys.filter(name=name, revoked_at__isnull=True).first()
        )
        if key is None:
            which = f"key {prefix}" if prefix else f"active key named {name!r}"
            raise CommandError(f"No {which} in tenant {tenant.slug}.")
        already = key.revoked_at is not None
        key = services.api_key_revoke(tenant=tenant, actor=Actor.for_cli("apikey"), key=key)
        state = "was already revoked" if already else "revoked"
        self.stdout.write(f"API key {key.prefix} ({key.name}) {state} at {key.revoked_at.isoformat()}")
