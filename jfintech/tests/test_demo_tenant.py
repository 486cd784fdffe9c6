import io
import re

import pytest
from django.core.management import call_command

from jfintech.tenancy.calendar import is_business_day
from jfintech.tenancy.demo import demo_tenant

# seed_demo runs as a command in autocommit (ingestion creates partitions on its own connection),
# so the test commits too rather than wrapping it in one long transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def _seed():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return dict(re.findall(r"demo (?:analyst|approver|admin): (\S+) / (\S+) \(tenant demo\)", out.getvalue()))


def test_the_demo_tenant_has_a_user_per_role_who_can_log_in(client):
    credentials = _seed()
    assert set(credentials) == {"demo-analyst", "demo-approver", "demo-admin"}
    tenant = demo_tenant()
    assert tenant.timezone == "Europe/London"
    assert sorted(tenant.weekend_days) == [6, 7]
    assert not is_business_day(tenant, tenant.holidays[0])
    roles = dict(tenant.memberships.values_list("user__username", "role"))
    assert roles == {"demo-analyst": "analyst", "demo-approver": "approver", "demo-admin": "admin"}
    for username, password in credentials.items():
        assert client.login(username=username, password=password)
        assert client.get("/api/v1/tenant/").json()["slug"] == "demo"
        assert client.get("/admin/").status_code == 200


def test_seeding_again_keeps_passwords_and_adds_nothing(client):
    first = _seed()
    second = _seed()
    assert first == second  # a restarted demo keeps its logins (jfintech/demo.py)
    assert client.login(username="demo-admin", password=first["demo-admin"])
    assert demo_tenant().memberships.count() == 3
