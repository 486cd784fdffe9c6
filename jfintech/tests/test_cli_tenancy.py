"""An integration's first day without the admin: a tenant and its API keys from the command line
(``manage.py tenant``, ``manage.py apikey``) and a tenant through the API for a superuser."""

from __future__ import annotations

import io
from datetime import date

import pytest
from django.core.management import CommandError, call_command

from jfintech.audit.models import AuditEvent
from jfintech.tenancy.models import ApiKey, Role, Tenant
from jfintech.tests.conftest import client_for
from jfintech.tests.factories import TenantFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_tenant_create_sets_calendar_window_and_audits_the_cli_user(tmp_path):
    calendar = tmp_path / "holidays.txt"
    calendar.write_text("# UAE 2026\n2026-12-02\n\n2026-12-03  # National Day\n")
    out, _ = run(
        "tenant", "create", "--slug", "gulf", "--name", "Gulf Bank", "--timezone", "Asia/Dubai",
        "--weekend-days", "6,7", "--calendar", str(calendar), "--window-months", "6",
        "--window-months-ahead", "1",
    )  # fmt: skip
    tenant = Tenant.objects.get(slug="gulf")
    assert (tenant.name, tenant.timezone, tenant.weekend_days) == ("Gulf Bank", "Asia/Dubai", [6, 7])
    assert tenant.holidays == [date(2026, 12, 2), date(2026, 12, 3)]
    assert (tenant.window_months_back, tenant.window_months_ahead) == (6, 1)
    assert "tenant gulf created" in out
    event = AuditEvent.objects.get(action="tenant.create", tenant=tenant)
    assert event.actor_kind == "system"
    assert event.actor_display.startswith("cli:tenant (os user ")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--timezone", "Mars/Olympus"], "not an IANA time zone"),
        (["--weekend-days", "6,8"], "ISO weekday numbers are 1"),
        (["--window-months", "-1"], "0 or more"),
    ],
)
def test_tenant_create_refuses_bad_values_naming_them(args, problem):
    with pytest.raises(CommandError, match=problem):
        run("tenant", "create", "--slug", "bad", "--name", "Bad", *args)
    assert not Tenant.objects.filter(slug="bad").exists()


def test_tenant_create_refuses_a_bad_calendar_line_and_an_existing_slug(tmp_path):
    calendar = tmp_path / "cal.txt"
    calendar.write_text("2026-12-25\n25/12/2026\n")
    with pytest.raises(CommandError, match="line 2: '25/12/2026' is not a date"):
        run("tenant", "create", "--slug", "x", "--name", "X", "--calendar", str(calendar))
    TenantFactory(slug="taken")
    with pytest.raises(CommandError, match="tenant_exists"):
        run("tenant", "create", "--slug", "taken", "--name", "Again")


def test_a_superuser_creates_a_tenant_through_the_api_and_a_tenant_admin_cannot():
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    body = {"slug": "north", "name": "North Bank", "timezone": "Europe/Oslo", "window_months_back": 12}
    response = client_for(root).post("/api/v1/tenants/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["window_months_back"] == 12
    assert Tenant.objects.get(slug="north").timezone == "Europe/Oslo"
    again = client_for(root).post("/api/v1/tenants/", body, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "tenant_exists")
    admin = member(Tenant.objects.get(slug="north"), Role.ADMIN)
    refused = client_for(admin).post("/api/v1/tenants/", {**body, "slug": "south"}, format="json")
    assert refused.status_code == 403
    assert not Tenant.objects.filter(slug="south").exists()


def test_the_apikey_command_end_to_end():
    """create → the key reads the API → list shows it without its secret → revoke → refused (401)."""
    tenant = TenantFactory(slug="acme")
    out, err = run("apikey", "create", "--tenant", "acme", "--role", "integration", "--name", "erp")
    plaintext = out.strip()
    assert plaintext.count(".") == 1
    assert "shown once" in err
    key = ApiKey.objects.get(tenant=tenant, name="erp")
    assert key.role == Role.INTEGRATION
    assert key.prefix == plaintext.split(".")[0]

    response = client_for(api_key=plaintext).get("/api/v1/tenant/")
    assert response.status_code == 200, response.content
    assert response.json()["slug"] == "acme"

    listing, _ = run("apikey", "list", "--tenant", "acme")
    assert key.prefix in listing
    assert plaintext.split(".")[1] not in listing

    out, _ = run("apikey", "revoke", "--tenant", "acme", "--name", "erp")
    assert f"API key {key.prefix} (erp) revoked" in out
    refused = client_for(api_key=plaintext).get("/api/v1/tenant/")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"
    assert refused["WWW-Authenticate"] == 'Api-Key realm="api"'

    actions = AuditEvent.objects.filter(tenant=tenant, object_id=str(key.pk)).values_list(
        "action", "actor_display"
    )
    assert [a for a, _ in actions.order_by("id")] == ["api_key.create", "api_key.revoke"]
    assert all(d.startswith("cli:apikey (os user ") for _, d in actions)


def test_the_apikey_command_refuses_unknown_tenants_and_keys():
    TenantFactory(slug="acme")
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        run("apikey", "create", "--tenant", "nope", "--name", "erp")
    with pytest.raises(CommandError, match="No active key named 'ghost'"):
        run("apikey", "revoke", "--tenant", "acme", "--name", "ghost")
    run("apikey", "create", "--tenant", "acme", "--name", "erp")
    with pytest.raises(CommandError, match="api_key_exists"):
        run("apikey", "create", "--tenant", "acme", "--name", "erp")
