import zoneinfo

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


def default_weekend_days() -> list[int]:
    return [6, 7]  # Saturday, Sunday


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"'{value}' is not an IANA time zone.", code="invalid_timezone") from exc


class Tenant(models.Model):
    """A bank or fintech using the platform. Every domain row carries one (TenantOwned)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA name, e.g. Europe/London",
    )
    # ISO weekday numbers (Monday=1 … Sunday=7) that are not business days.
    weekend_days = ArrayField(models.PositiveSmallIntegerField(), default=default_weekend_days, blank=True)
    holidays = ArrayField(models.DateField(), default=list, blank=True)
    # Records dated outside [today - back, today + ahead] months are rejected at ingestion.
    window_months_back = models.PositiveSmallIntegerField(default=24)
    window_months_ahead = models.PositiveSmallIntegerField(default=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weekend_days__contained_by=[1, 2, 3, 4, 5, 6, 7]), name="tenant_weekend_days_iso"
            )
        ]

    def __str__(self):
        return self.slug


class Role(models.TextChoices):
    ANALYST = "analyst"
    APPROVER = "approver"
    ADMIN = "admin"
    INTEGRATION = "integration"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="memberships", on_delete=models.CASCADE)
    tenant = models.ForeignKey(Tenant, related_name="memberships", on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="uniq_membership_user_tenant")]

    def __str__(self):
        return f"{self.user} @ {self.tenant} ({self.role})"


class TenantOwned(models.Model):
    """Abstract base of every domain row: the tenant it belongs to, indexed."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")

    class Meta:
        abstract = True


class ApiKey(models.Model):
    """An integration's credential: ``Authorization: Api-Key <prefix>.<secret>``.

    Only a SHA-256 of the secret is stored (the secret is 256 random bits, so a slow hash adds
    nothing); the plaintext is shown once, by ``api_key_create``. The key acts for one tenant
    with one role, never as the user who created it.
    """

    tenant = models.ForeignKey(Tenant, related_name="api_keys", on_delete=models.CASCADE)
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.INTEGRATION)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64, help_text="SHA-256 hex of the secret")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+", on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"],
                condition=Q(revoked_at__isnull=True),
                name="uniq_active_api_key_name",
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…) @ {self.tenant_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
