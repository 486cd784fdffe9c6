import pytest

from jfintech.audit.models import AuditEvent
from jfintech.tenancy import services
from jfintech.tenancy.models import ApiKey, Role
from jfintech.tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_a_key_is_shown_once_stored_hashed_and_audited(key_a):
    stored = ApiKey.objects.get(pk=key_a.key.pk)
    prefix, secret = key_a.plaintext.split(".", 1)
    assert stored.prefix == prefix
    assert secret not in stored.secret_hash
    assert stored.secret_hash == services.hash_secret(secret)
    event = AuditEvent.objects.get(action="api_key.create", object_id=str(stored.pk))
    assert event.tenant == stored.tenant
    assert secret not in str(event.after)
    assert stored.secret_hash not in str(event.after)


def test_a_key_authenticates_for_its_tenant_and_role_and_records_last_use(key_a):
    client = client_for(api_key=key_a.plaintext)
    response = client.get("/api/v1/tenant/")
    assert response.status_code == 200, response.content
    assert response.json()["slug"] == "a"
    key = ApiKey.objects.get(pk=key_a.key.pk)
    assert key.last_used_at is not None
    # A second use within the minute does not write again.
    first_use = key.last_used_at
    client.get("/api/v1/tenant/")
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first_use


@pytest.mark.parametrize("header", ["Api-Key nope", "Api-Key abc.def", "Api-Key", "Api-Key a.b c"])
def test_a_wrong_key_is_rejected(header, key_a):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/tenant/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_wrong_secret_with_a_real_prefix_is_rejected(key_a):
    prefix = key_a.plaintext.split(".")[0]
    response = client_for(api_key=f"{prefix}.not-the-secret").get("/api/v1/tenant/")
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_revoked_key_is_rejected_and_the_revocation_audited(key_a, admin_a):
    response = client_for(admin_a).post(f"/api/v1/api-keys/{key_a.key.pk}/revoke/")
    assert response.status_code == 200, response.content
    assert response.json()["revoked_at"]
    assert AuditEvent.objects.filter(action="api_key.revoke", object_id=str(key_a.key.pk)).count() == 1
    response = client_for(api_key=key_a.plaintext).get("/api/v1/tenant/")
    assert response.json()["error"]["code"] == "authentication_failed"


def test_the_api_creates_a_key_once_and_never_lists_its_secret(admin_a):
    client = client_for(admin_a)
    response = client.post("/api/v1/api-keys/", {"name": "bank-feed", "role": "integration"}, format="json")
    assert response.status_code == 201, response.content
    plaintext = response.json()["key"]
    listed = client.get("/api/v1/api-keys/").json()
    assert plaintext.split(".")[1] not in str(listed)
    assert client_for(api_key=plaintext).get("/api/v1/tenant/").status_code == 200


def test_a_key_cannot_act_beyond_its_role(tenant_a, admin_a):
    from jfintech.audit import Actor

    created = services.api_key_create(
        tenant=tenant_a, actor=Actor.for_user(admin_a), name="feed", role=Role.INTEGRATION
    )
    client = client_for(api_key=created.plaintext)
    assert client.get("/api/v1/memberships/").status_code == 403
    # Even naming another tenant does not move a key out of its own.
    assert client.get("/api/v1/tenant/", HTTP_X_TENANT="b").json()["slug"] == "a"
