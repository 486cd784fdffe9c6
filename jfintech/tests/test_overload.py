"""Overload answers 429/503 with Retry-After, never a 500 (issue 19): the per-key rate limit, a
database pool that gives no connection within its timeout, and a queue at its depth limit."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import redis
import requests
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from jfintech.api import admission
from jfintech.api.models import IdempotencyKey
from jfintech.api.throttling import _redis
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.observability.platform import broker_queue_keys
from jfintech.tenancy import services
from jfintech.tenancy.models import Role
from jfintech.testing.processes import (
    database_url_for_current_connection,
    free_port,
    gunicorn_server,
    wait_until,
)
from jfintech.tests.factories import TenantFactory
from jfintech.tests.test_api_errors import assert_error
from reconciliation.matching.models import SimulationReport
from reconciliation.runs.models import Run
from reconciliation.runs.tests.factories import AS_OF, definition
from reporting.models import ExportJob

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


# --- Admission control on queue depth (jfintech/api/admission.py) ---------------------------------


@pytest.fixture
def broker(settings):
    """The broker's lists under a key prefix of this test's own (no session worker consumes them);
    the admission check reads the depth fresh at every request. Yields a function that puts
    ``n`` fake messages on a queue (one of them on a priority list: the depth sums them all)."""
    prefix = f"jfadmit-{uuid.uuid4().hex[:8]}:"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "global_keyprefix": prefix,
    }
    settings.API_QUEUE_DEPTH_CACHE_SECONDS = 0
    admission._depths.clear()
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    def fill(queue: str, n: int) -> None:
        keys = broker_queue_keys(queue, settings.CELERY_BROKER_TRANSPORT_OPTIONS)
        client.delete(*keys)
        if n:
            client.lpush(keys[1], b'{"fake": "prioritised"}')
        for _ in range(n - 1):
            client.lpush(keys[0], b'{"fake": "message"}')

    yield fill
    client.delete(*client.keys(f"{prefix}*") or [prefix])
    admission._depths.clear()


def _refusals(queue: str) -> float:
    return REGISTRY.get_sample_value("api_queue_full_refusals_total", {"queue": queue}) or 0.0


def _key_client(tenant, role=Role.ANALYST) -> APIClient:
    created = services.api_key_create(tenant=tenant, actor=Actor.for_system("t"), name="load", role=role)
    c = APIClient(raise_request_exception=False)
    c.credentials(HTTP_AUTHORIZATION=f"Api-Key {created.plaintext}")
    return c


def test_a_run_start_at_the_queue_limit_is_503_queue_full_and_creates_nothing(settings, broker):
    settings.API_QUEUE_DEPTH_LIMIT = 5
    settings.API_QUEUE_DEPTH_LIMITS = {"reconciliation": 50}
    defn = definition(TenantFactory(), name="admitted")
    c = _key_client(defn.tenant)
    body, url = {"definition": "admitted", "as_of": AS_OF.isoformat()}, "/api/v1/reconciliation/runs/"
    before = _refusals("fetch")

    broker("fetch", 5)  # at the limit: refused, with or without an Idempotency-Key
    for headers in ({}, {"HTTP_IDEMPOTENCY_KEY": "start-1"}):
        refused = c.post(url, body, format="json", **headers)
        error = assert_error(refused, 503, "queue_full")
        assert error["details"] == {"queue": "fetch", "depth": 5, "limit": 5}
        assert refused["Retry-After"] == str(settings.API_QUEUE_FULL_RETRY_AFTER)
    assert not Run.objects.filter(definition=defn).exists()
    assert not IdempotencyKey.objects.exists()  # the refused key is free for the retry
    assert not AuditEvent.objects.filter(action="recon_run.started").exists()
    assert _refusals("fetch") == before + 2

    broker("fetch", 4)  # one below: the same request (and key) is accepted
    accepted = c.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="start-1")
    assert accepted.status_code == 202, accepted.content
    assert Run.objects.filter(definition=defn).count() == 1
    assert _refusals("fetch") == before + 2


def test_the_compute_queue_gates_runs_and_dry_runs_and_the_default_queue_exports(settings, broker):
    settings.API_QUEUE_DEPTH_LIMIT = 3
    tenant = TenantFactory()
    defn = definition(tenant, name="gated")
    c = _key_client(tenant)
    broker("reconciliation", 3)  # a compute backlog refuses a new run (its compute would join it)
    refused = c.post("/api/v1/reconciliation/runs/", {"definition": "gated"}, format="json")
    assert assert_error(refused, 503, "queue_full")["details"]["queue"] == "reconciliation"
    assert not Run.objects.filter(definition=defn).exists()
    dry_run = c.post(f"/api/v1/reconciliation/definitions/{defn.pk}/dry-runs/", {}, format="json")
    assert assert_error(dry_run, 503, "queue_full")["details"]["queue"] == "reconciliation"
    assert not SimulationReport.objects.exists()
    broker("reconciliation", 2)
    assert (
        c.post(f"/api/v1/reconciliation/definitions/{defn.pk}/dry-runs/", {}, format="json").status_code
        == 202
    )

    before = _refusals("default")
    broker("default", 3)  # reporting.run_export's queue
    export = c.post("/api/v1/reports/exports/", {"export": "csv"}, format="json")
    assert assert_error(export, 503, "queue_full")["details"]["queue"] == "default"
    assert not ExportJob.objects.exists()
    assert _refusals("default") == before + 1
    broker("default", 0)
    assert c.post("/api/v1/reports/exports/", {"export": "csv"}, format="json").status_code == 202


def test_reads_are_never_gated_and_a_zero_limit_turns_it_off(settings, broker):
    settings.API_QUEUE_DEPTH_LIMIT = 0
    tenant = TenantFactory()
    definition(tenant, name="unlimited")
    c = _key_client(tenant)
    broker("fetch", 10)
    started = c.post("/api/v1/reconciliation/runs/", {"definition": "unlimited"}, format="json")
    assert started.status_code == 202
    settings.API_QUEUE_DEPTH_LIMIT = 1
    assert c.get("/api/v1/reconciliation/runs/").status_code == 200


def test_the_depth_is_read_once_per_cache_period_and_an_unreachable_broker_admits(settings, broker):
    broker("fetch", 2)
    settings.API_QUEUE_DEPTH_CACHE_SECONDS = 60
    assert admission.queue_depth("fetch") == 2
    broker("fetch", 7)
    assert admission.queue_depth("fetch") == 2  # the cached reading: no LLEN per request
    admission._depths.clear()
    assert admission.queue_depth("fetch") == 7

    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    admission._depths.clear()
    settings.API_QUEUE_DEPTH_LIMIT = 1
    assert admission.queue_depth("fetch") is None
    admission.admit("fetch")  # admitted: the run's row is its own outbox (see the module)


# --- Pool exhaustion under a real gunicorn ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_exhausted_pool_answers_503_within_its_timeout_not_a_hang(tmp_path):
    """One gunicorn process, four threads, a pool of ONE connection with a 1 s timeout. A request
    holds that connection (its query waits on a lock this test holds); the next request waits for
    the pool, gets none within DB_POOL_TIMEOUT and is answered 503 with Retry-After: it neither
    hangs nor fails with a 500. The held request completes once the lock goes."""
    tenant = TenantFactory()
    key = services.api_key_create(tenant=tenant, actor=Actor.for_system("t"), name="pool", role=Role.ANALYST)
    headers = {"Authorization": f"Api-Key {key.plaintext}"}
    server = gunicorn_server(
        tmp_path, workers=1, GUNICORN_THREADS=4, DB_POOL_MIN=1, DB_POOL_MAX=1, DB_POOL_TIMEOUT=1,
        OTEL_TRACES_EXPORTER="none",
    ).start()  # fmt: skip
    url = server.extra["url"]
    locker = psycopg.connect(database_url_for_current_connection())
    try:
        wait_until(lambda: _answers(f"{url}/livez"), timeout=60, message=f"gunicorn not up:\n{server.tail()}")
        assert requests.get(f"{url}/api/v1/exceptions/cases/", headers=headers, timeout=30).status_code == 200
        locker.execute("LOCK TABLE exceptions_case IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(requests.get, f"{url}/api/v1/exceptions/cases/", headers=headers, timeout=60)
            wait_until(lambda: _lock_waiters() > 0, timeout=30, message="the case list never blocked")
            started = time.monotonic()
            refused = requests.get(f"{url}/api/v1/reconciliation/runs/", headers=headers, timeout=30)
            waited = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "service_unavailable"
            assert refused.headers["Retry-After"] == "5"
            assert 0.9 <= waited < 5, waited  # the pool's 1 s timeout (+ a busy machine), not a hang
            assert not held.done()
            locker.rollback()
            assert held.result(timeout=30).status_code == 200
        after = requests.get(f"{url}/api/v1/reconciliation/runs/", headers=headers, timeout=30)
        assert after.status_code == 200  # the pool recovers by itself
    finally:
        locker.close()
        server.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _lock_waiters() -> int:
    # Asked on a connection of its own: the locker is inside its transaction.
    with psycopg.connect(database_url_for_current_connection(), autocommit=True) as probe:
        return probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchone()[0]
