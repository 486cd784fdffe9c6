import pytest
from rest_framework.test import APIClient

from jfintech.audit import Actor
from jfintech.tenancy import services
from jfintech.tenancy.models import Role
from jfintech.tests.factories import TenantFactory, member


@pytest.fixture
def tenant_a():
    return TenantFactory(slug="a")


@pytest.fixture
def tenant_b():
    return TenantFactory(slug="b")


@pytest.fixture
def api():
    return APIClient()


def client_for(user=None, *, api_key: str | None = None, tenant_slug: str | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    if api_key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    if tenant_slug is not None:
        client.defaults["HTTP_X_TENANT"] = tenant_slug
    return client


@pytest.fixture
def admin_a(tenant_a):
    return member(tenant_a, Role.ADMIN)


@pytest.fixture
def key_a(tenant_a, admin_a):
    return services.api_key_create(
        tenant=tenant_a, actor=Actor.for_user(admin_a), name="erp", role=Role.ADMIN
    )
