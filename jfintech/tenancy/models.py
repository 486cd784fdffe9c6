from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


class Tenant(models.Model):
    """A bank or fintech using the platform. Every domain row carries one (TenantOwned)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Europe/London")
    # ISO weekday numbers (Monday=1 … Sunday=7) that are not business days.
    weekend_days = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    holidays = ArrayField(models.DateField(), default=list, blank=True)
    # Records dated outside [today - back, today + ahead] months are rejected at ingestion.
    window_months_back = models.PositiveSmallIntegerField(default=24)
    window_months_ahead = models.PositiveSmallIntegerField(default=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

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
