"""`make demo`: the demo tenant and one user per role, with their passwords (kept across restarts,
jfintech.demo.demo_password) printed each start.

Other apps' demo seeders (listed after this one in settings.DEMO_SEEDERS) find the tenant with
``demo_tenant()`` and act as ``DEMO_ACTOR``.
"""

from datetime import date

from django.contrib.auth import get_user_model
from django.db import transaction

from jfintech.audit import Actor
from jfintech.demo import demo_password
from jfintech.tenancy import services
from jfintech.tenancy.models import Membership, Role, Tenant

DEMO_TENANT_SLUG = "demo"
DEMO_ACTOR = Actor.for_system("demo-seed")
# England and Wales bank holidays (gov.uk), enough for the demo's SLAs and as-of dates.
DEMO_HOLIDAYS = [
    date(2026, 1, 1),
    date(2026, 4, 3),
    date(2026, 4, 6),
    date(2026, 5, 4),
    date(2026, 5, 25),
    date(2026, 8, 31),
    date(2026, 12, 25),
    date(2026, 12, 28),
    date(2027, 1, 1),
    date(2027, 3, 26),
    date(2027, 3, 29),
    date(2027, 5, 3),
    date(2027, 5, 31),
    date(2027, 8, 30),
    date(2027, 12, 27),
    date(2027, 12, 28),
]
DEMO_USERS = {Role.ANALYST: "demo-analyst", Role.APPROVER: "demo-approver", Role.ADMIN: "demo-admin"}
# The admin is the analysts' desk: every demo user is staff; what each sees and may do there is
# their tenant role's (jfintech.tenancy.permissions), not Django model permissions.


def demo_tenant() -> Tenant:
    return Tenant.objects.get(slug=DEMO_TENANT_SLUG)


def seed_demo_tenant(out) -> None:
    with transaction.atomic():
        tenant = Tenant.objects.filter(slug=DEMO_TENANT_SLUG).first() or services.tenant_create(
            actor=DEMO_ACTOR,
            slug=DEMO_TENANT_SLUG,
            name="Demo Bank plc",
            timezone_name="Europe/London",
            weekend_days=[6, 7],
            holidays=DEMO_HOLIDAYS,
        )
        lines = [f"demo tenant: {tenant.slug} ({tenant.name}, {tenant.timezone})"]
        for role, username in DEMO_USERS.items():
            user, _ = get_user_model().objects.get_or_create(
                username=username, defaults={"email": f"{username}@demo.invalid"}
            )
            user.is_staff, user.is_superuser = True, False
            user.save()
            password = demo_password(user, label=f"{role} of tenant {tenant.slug}")
            membership = Membership.objects.filter(tenant=tenant, user=user).first()
            if membership is None:
                services.membership_create(tenant=tenant, actor=DEMO_ACTOR, user=user, role=role)
            elif membership.role != role:
                services.membership_change_role(
                    tenant=tenant, actor=DEMO_ACTOR, membership=membership, role=role
                )
            lines.append(f"demo {role}: {username} / {password} (tenant {tenant.slug})")
    out.write("\n".join(lines))
