import pytest
from django.core.exceptions import ImproperlyConfigured

from jfintech.api.permissions import TenantPermission, tenant_may
from jfintech.tenancy.models import Role
from jfintech.tests.conftest import client_for
from jfintech.tests.factories import MembershipFactory, UserFactory, member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("role", "status"), [(Role.ADMIN, 200), (Role.APPROVER, 403), (Role.ANALYST, 403)])
def test_membership_admin_needs_the_admin_role(tenant_a, role, status):
    response = client_for(member(tenant_a, role)).get("/api/v1/memberships/")
    assert response.status_code == status


def test_a_user_of_several_tenants_names_one_and_gets_that_tenants_role(tenant_a, tenant_b):
    user = member(tenant_a, Role.ADMIN)
    MembershipFactory(user=user, tenant=tenant_b, role=Role.ANALYST)
    assert client_for(user).get("/api/v1/memberships/").json()["error"]["code"] == "tenant_required"
    assert client_for(user, tenant_slug="a").get("/api/v1/memberships/").status_code == 200
    assert client_for(user, tenant_slug="b").get("/api/v1/memberships/").status_code == 403
    assert client_for(user, tenant_slug="zzz").get("/api/v1/memberships/").status_code == 404


def test_a_user_without_membership_is_refused(tenant_a):
    response = client_for(UserFactory()).get("/api/v1/tenant/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "tenant_required"


def test_the_factory_rejects_unknown_areas_and_verbs_and_names_its_class():
    with pytest.raises(ImproperlyConfigured):
        tenant_may("owner")
    with pytest.raises(ImproperlyConfigured):
        tenant_may("batch", "delete_everything")
    cls = tenant_may("batch", "reverse")
    assert issubclass(cls, TenantPermission)
    assert (cls.area, cls.verb) == ("batch", "reverse")
