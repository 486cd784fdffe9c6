"""Idempotency under real concurrency: a gunicorn subprocess and a pool of HTTP clients, and a
repeat that has to wait for an in-flight first request."""

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
import requests
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.response import Response

from jfintech.api import idempotency
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.tenancy import services
from jfintech.tenancy.models import Membership, Role, Tenant
from jfintech.testing.processes import gunicorn_server, wait_until
from jfintech.tests.conftest import client_for
from jfintech.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path):
    process = gunicorn_server(tmp_path, OTEL_TRACES_EXPORTER="none").start()
    url = process.extra["url"]

    def up():
        try:
            return requests.get(f"{url}/livez", timeout=5).status_code == 200
        except requests.RequestException:  # not listening yet, or the worker still booting
            return False

    try:
        wait_until(up, timeout=60, interval=0.2, message=f"gunicorn not up:\n{process.tail()}")
        yield url
    finally:
        process.stop()
        # Shown by pytest only when the test fails: the server's errors, tracebacks included.
        for record in process.log_records():
            if record.get("level") == "error":
                sys.stderr.write(json.dumps(record) + "\n")


@pytest.mark.slow
def test_twenty_concurrent_identical_posts_act_once_and_get_one_response(server, tenant_a, admin_a):
    # A tenant setting, not a membership: API keys never manage memberships (docs/tenancy.md).
    key = services.api_key_create(tenant=tenant_a, actor=Actor.for_user(admin_a), name="erp", role=Role.ADMIN)
    headers = {"Authorization": f"Api-Key {key.plaintext}", "Idempotency-Key": "order-7"}
    body = {"date": "2026-12-24"}
    start = threading.Barrier(20)

    def post(_):
        with requests.Session() as http:
            start.wait()
            r = http.post(f"{server}/api/v1/tenant/holidays/", json=body, headers=headers, timeout=30)
            return r.status_code, r.content

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, range(20)))

    assert {status for status, _ in responses} == {201}, responses
    assert len({content for _, content in responses}) == 1
    assert Tenant.objects.get(pk=tenant_a.pk).holidays == [date(2026, 12, 24)]
    assert AuditEvent.objects.filter(tenant=tenant_a, action="tenant.update").count() == 1

    other = requests.post(
        f"{server}/api/v1/tenant/holidays/", json={"date": "2026-12-31"}, headers=headers, timeout=30
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def _scope(tenant, user, key):
    return {
        "tenant_id": tenant.pk,
        "principal": f"user:{user.pk}",
        "method": "POST",
        "path": "/api/v1/memberships/",
        "key": key,
    }


def _hold_first_request(scope, body_hash, *, holding, release, store_response):
    """Plays an in-flight first request: the key is claimed, its transaction still open."""
    try:
        with transaction.atomic():
            assert idempotency._claim(scope, body_hash) is None
            holding.set()
            assert release.wait(30)
            if store_response is None:
                transaction.set_rollback(True)
            else:
                idempotency._store(scope, store_response)
    finally:
        connection.close()


def _body_hash(body):
    class Req:
        data = body

    return idempotency.request_body_hash(Req)


def _blocked_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_a_concurrent_repeat_waits_for_the_first_and_gets_its_response(tenant_a, admin_a):
    body = {"username": "carol", "role": "analyst"}
    holding, release = threading.Event(), threading.Event()
    stored = Response({"id": 1, "username": "carol", "role": "analyst", "created_at": "x"}, status=201)
    first = threading.Thread(
        target=_hold_first_request,
        args=(_scope(tenant_a, admin_a, "k-wait"), _body_hash(body)),
        kwargs={"holding": holding, "release": release, "store_response": stored},
    )
    first.start()
    assert holding.wait(30)
    result = {}

    def repeat():
        try:
            result["response"] = client_for(admin_a).post(
                "/api/v1/memberships/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-wait"
            )
        finally:
            connection.close()

    second = threading.Thread(target=repeat)
    second.start()
    wait_until(_blocked_on_a_lock, timeout=20, interval=0.05, message="the repeat did not wait for the first")
    release.set()
    first.join(30)
    second.join(30)
    response = result["response"]
    assert response.status_code == 201
    assert response.json()["created_at"] == "x"  # the first request's stored response, replayed
    assert response["Idempotent-Replayed"] == "true"
    assert not Membership.objects.filter(user__username="carol").exists()  # the repeat did not act


def test_a_repeat_that_waits_too_long_gets_409(tenant_a, admin_a):
    UserFactory(username="carol")
    body = {"username": "carol", "role": "analyst"}
    holding, release = threading.Event(), threading.Event()
    first = threading.Thread(
        target=_hold_first_request,
        args=(_scope(tenant_a, admin_a, "k-slow"), _body_hash(body)),
        kwargs={"holding": holding, "release": release, "store_response": None},
    )
    first.start()
    try:
        assert holding.wait(30)
        with override_settings(IDEMPOTENCY_WAIT_SECONDS=0.3):
            response = client_for(admin_a).post(
                "/api/v1/memberships/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-slow"
            )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "idempotency_in_progress"
    finally:
        release.set()
        first.join(30)
    # The first request failed (rolled back): the key is free and a retry acts.
    retry = client_for(admin_a).post(
        "/api/v1/memberships/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-slow"
    )
    assert retry.status_code == 201
