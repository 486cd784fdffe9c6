"""Idempotent POSTs in-process (the concurrent proof against gunicorn is in test_idempotency_concurrency)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jfintech.api import services
from jfintech.api.models import IdempotencyKey
from jfintech.audit.models import AuditEvent
from jfintech.tenancy.models import Membership, Role
from jfintech.tests.conftest import client_for
from jfintech.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _post(client, body, key="k-1"):
    return client.post("/api/v1/memberships/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_repeat_replays_the_first_response_without_acting_again(admin_a, tenant_a):
    UserFactory(username="carol")
    client = client_for(admin_a)
    first = _post(client, {"username": "carol", "role": "analyst"})
    second = _post(client, {"role": "analyst", "username": "carol"})  # same body, other key order
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second["Idempotent-Replayed"] == "true"
    assert Membership.objects.filter(tenant=tenant_a, user__username="carol").count() == 1
    assert AuditEvent.objects.filter(action="membership.create").count() == 1


def test_the_same_key_with_another_body_is_422(admin_a):
    UserFactory(username="carol")
    client = client_for(admin_a)
    assert _post(client, {"username": "carol", "role": "analyst"}).status_code == 201
    response = _post(client, {"username": "carol", "role": "approver"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_keys_are_scoped_to_the_principal(admin_a, tenant_a, key_a):
    # Holidays, not memberships: an API key never manages memberships (docs/tenancy.md).
    def post(client, day):
        return client.post(
            "/api/v1/tenant/holidays/", {"date": day}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
        )

    assert post(client_for(admin_a), "2026-12-24").status_code == 201
    # Same key, another principal (the tenant's API key): a new request, not a replay or a 422.
    response = post(client_for(api_key=key_a.plaintext), "2026-12-31")
    assert response.status_code == 201
    assert IdempotencyKey.objects.filter(key="k-1").count() == 2


def test_a_failure_is_not_stored_so_a_retry_runs_again(admin_a, tenant_a):
    client = client_for(admin_a)
    body = {"username": "erin", "role": "analyst"}
    assert _post(client, body).json()["error"]["code"] == "user_not_found"
    assert not IdempotencyKey.objects.exists()
    UserFactory(username="erin")
    assert _post(client, body).status_code == 201


def test_without_a_key_a_repeat_acts_again(admin_a):
    UserFactory(username="carol")
    client = client_for(admin_a)
    body = {"username": "carol", "role": "analyst"}
    assert client.post("/api/v1/memberships/", body, format="json").status_code == 201
    assert client.post("/api/v1/memberships/", body, format="json").status_code == 409


def test_an_invalid_key_is_refused(admin_a):
    response = _post(client_for(admin_a), {"username": "x", "role": "analyst"}, key="has space")
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


def test_purge_keeps_keys_for_at_least_a_day(admin_a):
    UserFactory(username="carol")
    _post(client_for(admin_a), {"username": "carol", "role": "analyst"})
    with pytest.raises(ValueError):
        services.idempotency_keys_purge(older_than_hours=1)
    assert services.idempotency_keys_purge(older_than_hours=24) == 0
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=49))
    assert services.idempotency_keys_purge() == 1


def test_the_header_is_documented_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    params = schema["paths"]["/api/v1/memberships/"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in params)
    assert Role.ADMIN  # the endpoint is admin-only; documented by its permission
