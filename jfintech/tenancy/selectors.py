"""Reads for tenancy. Domain selectors scope every user-reachable query with ``for_tenant``."""

from django.db.models import QuerySet

from jfintech.tenancy.models import ApiKey, Membership, Role, Tenant


def tenants_for_user(user) -> QuerySet[Tenant]:
    if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return Tenant.objects.none()
    if user.is_superuser:
        return Tenant.objects.all()
    return Tenant.objects.filter(memberships__user=user).distinct()


def role_of(user, tenant: Tenant) -> str | None:
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    if getattr(user, "pk", None) is None:
        return None
    return Membership.objects.filter(user=user, tenant=tenant).values_list("role", flat=True).first()


def for_tenant(queryset: QuerySet, tenant: Tenant) -> QuerySet:
    return queryset.filter(tenant=tenant)


def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("id")


def api_key_list(*, tenant: Tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant=tenant).order_by("id")


def api_key_for_credentials(prefix: str) -> ApiKey | None:
    return ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
