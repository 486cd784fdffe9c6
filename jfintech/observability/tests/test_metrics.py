"""Metrics proven on real processes: a gunicorn and the session's workers, each with its own
multiprocess directory, scraped before and after a pipeline check; the queue collector against
messages kombu really published to Redis."""

import time
import uuid

import pytest
import redis
import requests
from django.conf import settings

from config.celery import app
from jfintech.health.models import PipelineCheck
from jfintech.observability.catalog import CATALOG
from jfintech.observability.platform import PUBLISHED_AT_HEADER, QueueCollector, broker_queue_keys
from jfintech.testing import processes
from jfintech.testing.metrics import scrape, value
from jfintech.testing.processes import wait_until


def _collect(collector):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value for m in collector.collect() for s in m.samples
    }


def test_queue_depth_sums_every_priority_list_and_reports_the_oldest_message_age():
    queue = f"obs-test-{uuid.uuid4().hex[:8]}"
    options = app.conf.broker_transport_options
    assert options.get("global_keyprefix"), "tests run on a private key prefix"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        # The oldest message (first in, so at the consuming end of its list) says it is 2 minutes old.
        app.send_task(
            "obs.never_consumed", queue=queue, priority=6, headers={PUBLISHED_AT_HEADER: time.time() - 120}
        )
        for priority in (0, 3, 6, 9, 9):
            app.send_task("obs.never_consumed", queue=queue, priority=priority)

        # The keys kombu really wrote are the ones the collector reads (prefix and separator included).
        written = {k.decode() for k in client.keys(options["global_keyprefix"] + queue + "*")}
        assert written == set(broker_queue_keys(queue, options))
        assert len(written) == 4

        samples = _collect(QueueCollector(queues=[queue]))
        assert samples[("celery_queue_length", (("queue", queue),))] == 6
        age = samples[("celery_queue_oldest_message_age_seconds", (("queue", queue),))]
        assert 120 <= age < 180
    finally:
        client.delete(*broker_queue_keys(queue, options))
    samples = _collect(QueueCollector(queues=[queue]))
    assert samples[("celery_queue_length", (("queue", queue),))] == 0
    assert samples[("celery_queue_oldest_message_age_seconds", (("queue", queue),))] == 0


@pytest.fixture
def gunicorn(observability_dir, tmp_path):
    server = processes.gunicorn_server(
        tmp_path, DB_POOL="true", DB_POOL_METRICS_INTERVAL_S="0.3",
        **processes.metrics_env(tmp_path, "web", port_variable=None),
    )  # fmt: skip
    server.start()
    try:
        wait_until(lambda: _answers(server.extra["url"] + "/livez"), timeout=120, message="gunicorn not up")
        yield server
    finally:
        server.stop()


def _answers(url):
    try:
        return requests.get(url, timeout=10).status_code == 200
    except requests.RequestException:  # not listening yet, or still loading the app
        return False


def _login(base_url, django_user_model):
    # Pipeline checks are a platform act (superusers only, jfintech/tenancy/permissions.py).
    django_user_model.objects.create_superuser("metrics-ops", password="pw")
    session = requests.Session()
    session.get(f"{base_url}/admin/login/", timeout=10)
    response = session.post(
        f"{base_url}/admin/login/?next=/admin/",
        data={
            "username": "metrics-ops",
            "password": "pw",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=10,
    )
    assert response.url.endswith("/admin/"), response.text[:500]
    return session


@pytest.mark.django_db(transaction=True)
@pytest.mark.workers
def test_gunicorn_and_workers_export_their_metrics_after_a_pipeline_check(
    gunicorn, celery_workers, django_user_model
):
    base = gunicorn.extra["url"]
    main, fetch = celery_workers["main"], celery_workers["fetch"]
    before = {w.name: scrape(w.extra["metrics_url"]) for w in (main, fetch)}
    session = _login(base, django_user_model)

    response = session.post(
        f"{base}/api/v1/health/pipeline-checks/",
        headers={"X-CSRFToken": session.cookies["csrftoken"]},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    check = wait_until(
        lambda: PipelineCheck.objects.exclude(status="pending").filter(pk=response.json()["id"]).first(),
        timeout=60,
    )
    assert check.status == "completed", check.error

    def delta(worker, name, **labels):
        after = value(scrape(worker.extra["metrics_url"]), name, **labels) or 0
        return after - (value(before[worker.name], name, **labels) or 0)

    probe = {"task": "health.pipeline_probe", "outcome": "success"}
    # default, ingest, reconciliation probes ran in the prefork worker; fetch in the threads one.
    wait_until(lambda: delta(main, "recon_task_duration_seconds_count", **probe) == 3, timeout=10)
    assert delta(fetch, "recon_task_duration_seconds_count", **probe) == 1
    assert (
        delta(main, "recon_task_duration_seconds_count", task="health.pipeline_complete", outcome="success")
        == 1
    )
    # The probes' get_or_create inserted their parts through Django: the query timer saw it.
    assert delta(main, "db_query_duration_seconds_count", alias="default", operation="insert") >= 3
    assert delta(fetch, "db_query_duration_seconds_count", alias="default", operation="insert") >= 1

    def web_samples():
        samples = scrape(f"{base}/metrics")
        return samples if value(samples, "db_pool_requests_total", alias="default") else None

    web = wait_until(web_samples, timeout=15, message="pool metrics never sampled")
    assert value(web, "db_query_duration_seconds_count", alias="default", operation="insert") >= 1
    assert value(web, "db_query_duration_seconds_count", alias="default", operation="select") >= 1
    # Each gunicorn worker that served a request has its pool (max 10); livesum adds them up.
    pool_max = value(web, "db_pool_max_connections", alias="default")
    assert pool_max in (10, 20)
    assert 1 <= value(web, "db_pool_connections", alias="default") <= pool_max
    assert value(web, "db_pool_available_connections", alias="default") <= value(
        web, "db_pool_connections", alias="default"
    )
    assert value(web, "db_pool_waiting_requests", alias="default") == 0
    assert value(web, "db_pool_wait_seconds_total", alias="default") is not None
    assert value(web, "django_http_responses_total_by_status_total", status="202") >= 1

    platform = {spec.name for spec in CATALOG if spec.served_by == "platform"}
    for samples in (web, scrape(main.extra["metrics_url"]), scrape(fetch.extra["metrics_url"])):
        # Nothing is labelled by process: livesum/mostrecent gauges drop the pid label.
        offenders = {s.name for s in samples if {"pid", "pod", "run_id"} & set(s.labels)}
        assert not offenders, offenders
        # Global state is beat's alone: no web or worker process serves it (no double counting).
        assert not platform & {s.name for s in samples}
