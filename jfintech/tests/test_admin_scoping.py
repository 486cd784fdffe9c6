import pytest

from jfintech.tenancy.models import Membership, Role
from jfintech.tests.factories import MembershipFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_a(client, tenant_a, tenant_b):
    user = member(tenant_a, Role.ADMIN, is_staff=True, is_superuser=False)
    from django.contrib.auth.models import Permission

    user.user_permissions.set(Permission.objects.filter(content_type__app_label="jfintech"))
    MembershipFactory(tenant=tenant_b, role=Role.ANALYST)
    client.force_login(user)
    return client


def test_the_admin_shows_a_staff_user_only_their_tenants_rows(staff_a, tenant_a, tenant_b):
    page = staff_a.get("/admin/jfintech/membership/")
    assert page.status_code == 200
    listed = {m.pk for m in page.context["cl"].result_list}
    assert listed == set(Membership.objects.filter(tenant=tenant_a).values_list("pk", flat=True))
    other = Membership.objects.get(tenant=tenant_b)
    assert staff_a.get(f"/admin/jfintech/membership/{other.pk}/change/").status_code == 302  # "doesn't exist"


def test_tenant_choices_on_add_are_the_users_tenants(staff_a, tenant_a):
    form = staff_a.get("/admin/jfintech/apikey/add/").context["adminform"].form
    assert list(form.fields["tenant"].queryset) == [tenant_a]


def test_an_api_key_added_in_the_admin_is_shown_once(staff_a, tenant_a):
    response = staff_a.post(
        "/admin/jfintech/apikey/add/",
        {"tenant": tenant_a.pk, "name": "erp", "role": "integration"},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert any("not shown again" in m for m in shown), shown
