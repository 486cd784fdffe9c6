"""The API asks the one permission table (``jfintech.tenancy.permissions``) for every request.

Usage in a DRF view::

    from jfintech.api.permissions import tenant_may

    class BatchReverseApi(APIView):
        permission_classes = [tenant_may("batch", "reverse")]

    class MembershipListApi(APIView):
        permission_classes = [tenant_may("membership")]   # GET view, POST add, PATCH change, DELETE delete

    class CaseCommentApi(APIView):
        permission_classes = [tenant_may("case", GET="view", POST="work")]

The tenant is ``jfintech.api.tenancy.request_tenant(request)`` (an API key's tenant, else the
``X-Tenant`` header or the user's only tenant). The role is the API key's role, or the user's
membership role in that tenant (superusers act as admin). A caller the table does not allow gets
403; an unknown tenant is 404 and an ambiguous one 400 (raised by ``request_tenant``).
``platform_only`` is for platform endpoints without a tenant (superusers only).

``actor_for_request(request)`` is the ``jfintech.audit.Actor`` to pass to services;
``role_for_request(request)`` the caller's role in the request's tenant (or None).
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from jfintech.api.tenancy import request_tenant
from jfintech.audit import Actor
from jfintech.tenancy import permissions
from jfintech.tenancy.models import ApiKey
from jfintech.tenancy.selectors import role_of


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


METHOD_VERBS = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add", "PUT": "change"}
METHOD_VERBS |= {"PATCH": "change", "DELETE": "delete"}


class TenantPermission(BasePermission):
    """Allows callers whose role in the request's tenant may ``verb`` in ``area`` (the table)."""

    area: str = ""
    verb: str | None = None  # None: by HTTP method (``by_method``, else METHOD_VERBS)
    by_method: dict[str, str] = {}
    message = "Your role in this tenant does not allow this."

    def has_permission(self, request, view) -> bool:
        if not getattr(request.user, "is_authenticated", False):
            return False
        if request.method.lower() not in view.http_method_names or not hasattr(view, request.method.lower()):
            return True  # the view has no such method: DRF answers 405, which says more than a 403
        verb = self.verb or self.by_method.get(request.method) or METHOD_VERBS[request.method]
        return permissions.may(
            role_for_request(request), self.area, verb, api_key=request_api_key(request) is not None
        )


def tenant_may(area: str, verb: str | None = None, **by_method: str) -> type[TenantPermission]:
    """A permission class for ``permission_classes``: the caller's role may ``verb`` in ``area``."""
    for v in (verb or "view", *by_method.values()):
        permissions.may(None, area, v)  # an unknown area or verb fails at import, not per request
    name = f"TenantPermission[{area}.{verb or by_method or 'by method'}]"
    return type(name, (TenantPermission,), {"area": area, "verb": verb, "by_method": by_method})


class PlatformOnly(BasePermission):
    """Platform endpoints (no tenant): superusers only."""

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "is_superuser", False))
