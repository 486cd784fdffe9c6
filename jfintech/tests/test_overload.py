"""Overload answers 429/503 with Retry-After, never a 500 (issue 19): the per-key rate limit, and
a database pool that gives no connection within its timeout."""

import time

import pytest
from rest_framework.test import APIClient

from jfintech.api.throttling import _redis
from jfintech.audit import Actor
from jfintech.tenancy import services
from jfintech.tenancy.models import Role
from jfintech.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_an_api_key_beyond_its_rate_is_429_with_retry_after_and_another_key_is_not(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    tenant = TenantFactory()
    clients = []
    for name in ("busy", "quiet"):
        created = services.api_key_create(
            tenant=tenant, actor=Actor.for_system("t"), name=name, role=Role.ANALYST
        )
        for key in _redis().scan_iter(f"jf:rate:{created.key.pk}:*"):
            _redis().delete(key)
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Api-Key {created.plaintext}")
        clients.append(c)
    busy, quiet = clients
    if 60 - time.time() % 60 < 5:  # the five requests must fall in one one-minute window
        time.sleep(60 - time.time() % 60 + 0.1)
    statuses = [busy.get("/api/v1/exceptions/cases/").status_code for _ in range(4)]
    limited = busy.get("/api/v1/exceptions/cases/")
    assert statuses[:3] == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "throttled"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert quiet.get("/api/v1/exceptions/cases/").status_code == 200


@pytest.mark.urls("jfintech.tests.urls_api_errors")
@pytest.mark.parametrize("path", ["/api/v1/test-pool-exhausted/", "/api/v1/test-pool-exhausted-api/"])
def test_pool_exhaustion_is_503_with_retry_after_in_the_shape(path):
    response = APIClient(raise_request_exception=False).get(path)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"] == "5"


@pytest.mark.urls("jfintech.tests.urls_api_errors")
def test_pool_exhaustion_outside_the_api_is_a_plain_503(client):
    client.raise_request_exception = False
    response = client.get("/test-pool-exhausted/")
    assert (response.status_code, response["Retry-After"]) == (503, "5")
