"""Which tenant an API request acts for. Every domain API view calls ``request_tenant``.

An API key carries its tenant. A user names one with the ``X-Tenant`` header (a slug they are a
member of), or acts for their only tenant. Anything else is a clear 400, never a guess.
"""

from jfintech.common.errors import ApplicationError
from jfintech.observability import bind_tenant
from jfintech.tenancy.models import Tenant
from jfintech.tenancy.selectors import tenants_for_user

TENANT_HEADER = "HTTP_X_TENANT"


def request_tenant(request) -> Tenant:
    cached = getattr(request, "_jf_tenant", None)
    if cached is not None:
        return cached
    key_tenant = getattr(getattr(request, "auth", None), "tenant", None)
    if key_tenant is not None:
        tenant = key_tenant
    else:
        allowed = tenants_for_user(request.user)
        slug = request.META.get(TENANT_HEADER)
        if slug:
            tenant = allowed.filter(slug=slug).first()
            if tenant is None:
                raise ApplicationError(
                    f"No tenant '{slug}' for this user.", code="tenant_not_found", status=404
                )
        else:
            tenants = list(allowed[:2])
            if len(tenants) != 1:
                raise ApplicationError(
                    "Name the tenant with the X-Tenant header (its slug).", code="tenant_required"
                )
            tenant = tenants[0]
    request._jf_tenant = tenant
    bind_tenant(tenant)  # every later log line of the request (and its tasks) names the tenant
    return tenant
