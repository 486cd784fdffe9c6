"""Role-based permissions within the request's tenant, for users and API keys alike.

Usage in a DRF view::

    from jfintech.api.permissions import tenant_role

    class CaseApproveApi(APIView):
        permission_classes = [tenant_role("approver", "admin")]

    class CaseListApi(APIView):
        permission_classes = [tenant_role()]          # any member of the tenant (any role)

The tenant is ``jfintech.api.tenancy.request_tenant(request)`` (an API key's tenant, else the
``X-Tenant`` header or the user's only tenant). The role is the API key's role, or the user's
membership role in that tenant (superusers act as admin). A user or key without an allowed role
gets 403; an unknown tenant is 404 and an ambiguous one 400 (raised by ``request_tenant``).

``actor_for_request(request)`` is the ``jfintech.audit.Actor`` to pass to services;
``role_for_request(request)`` the caller's role in the request's tenant (or None).
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from jfintech.api.tenancy import request_tenant
from jfintech.audit import Actor
from jfintech.tenancy.models import ApiKey, Role
from jfintech.tenancy.selectors import role_of

ALL_ROLES = frozenset(Role.values)


def request_api_key(request) -> ApiKey | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


def role_for_request(request) -> str | None:
    """The caller's role in ``request_tenant(request)``: the key's role, or the membership's."""
    if hasattr(request, "_jf_role"):
        return request._jf_role
    tenant = request_tenant(request)
    key = request_api_key(request)
    if key is not None:
        role = key.role if key.tenant_id == tenant.pk else None
    else:
        role = role_of(request.user, tenant)
    request._jf_role = role
    return role


def actor_for_request(request) -> Actor:
    key = request_api_key(request)
    if key is not None:
        return Actor.for_api_key(key)
    return Actor.for_user(request.user)


class HasTenantRole(BasePermission):
    """Allows callers whose role in the request's tenant is in ``roles`` (all roles if empty)."""

    roles: frozenset[str] = frozenset()
    message = "Your role in this tenant does not allow this."

    def has_permission(self, request, view) -> bool:
        if not getattr(request.user, "is_authenticated", False):
            return False
        role = role_for_request(request)
        return role is not None and (not self.roles or role in self.roles)

    @classmethod
    def of(cls, *roles: str) -> type[HasTenantRole]:
        unknown = set(roles) - ALL_ROLES
        if unknown:
            raise ValueError(f"unknown roles: {sorted(unknown)}")
        name = f"HasTenantRole[{','.join(sorted(roles)) or '*'}]"
        return type(name, (cls,), {"roles": frozenset(roles)})


def tenant_role(*roles: str) -> type[HasTenantRole]:
    """A permission class for ``permission_classes``: the caller holds one of ``roles``."""
    return HasTenantRole.of(*roles)
