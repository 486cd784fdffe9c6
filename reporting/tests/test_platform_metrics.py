"""Platform metrics: computed at scrape time by beat (one process), from PostgreSQL and Redis."""

from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery import app
from exceptions.models import Case
from exceptions.services import cases_sync_for_run
from exceptions.tests.factories import TenantFactory, break_input
from jfintech.audit import Actor
from jfintech.observability.platform import broker_queue_keys
from jfintech.testing import processes
from jfintech.testing.metrics import scrape, value
from jfintech.testing.processes import read_spans, wait_until
from reporting.metrics import RunsAndCasesCollector


def _open_cases():
    """Three open cases (normal/lt_1d, high/3d_7d past SLA, low/ge_30d) and one resolved."""
    tenant = TenantFactory(slug="metrics-bank")
    breaks = [break_input(7) for _ in range(4)]
    cases_sync_for_run(tenant=tenant, definition_id=7, definition_name="cash", run_id=1, trace_id="",
                       breaks=breaks, actor=Actor.for_system("test"))  # fmt: skip
    now = timezone.now()
    fingerprints = [b.fingerprint for b in breaks]
    Case.objects.filter(fingerprint=fingerprints[0]).update(priority="normal", first_seen_at=now)
    Case.objects.filter(fingerprint=fingerprints[1]).update(
        priority="high", first_seen_at=now - timedelta(days=4), sla_due_at=now - timedelta(hours=1)
    )
    Case.objects.filter(fingerprint=fingerprints[2]).update(
        priority="low", first_seen_at=now - timedelta(days=45)
    )
    Case.objects.filter(fingerprint=fingerprints[3]).update(
        status="resolved", resolution_reason="auto_matched", resolved_at=now, priority="high"
    )


def _samples(collector):
    return [s for m in collector.collect() for s in m.samples]


@pytest.mark.django_db
def test_open_cases_per_priority_and_age_bucket():
    _open_cases()
    samples = _samples(RunsAndCasesCollector())
    assert value(samples, "exception_cases_open", priority="normal", age_bucket="lt_1d") == 1
    assert value(samples, "exception_cases_open", priority="high", age_bucket="3d_7d") == 1
    assert value(samples, "exception_cases_open", priority="low", age_bucket="ge_30d") == 1
    assert value(samples, "exception_cases_open") == 3  # the resolved one is not counted
    assert value(samples, "exception_cases_open", priority="critical", age_bucket="7d_30d") == 0
    assert value(samples, "exception_cases_past_sla", priority="high") == 1
    assert value(samples, "exception_cases_past_sla") == 1


@pytest.fixture
def beat(tmp_path):
    process = processes.celery_beat(tmp_path, **processes.metrics_env(tmp_path, "beat", "BEAT_METRICS_PORT"))
    yield process
    process.stop()


@pytest.mark.django_db(transaction=True)
def test_beat_serves_the_platform_metrics_and_traces_its_ticks(beat):
    _open_cases()
    # A tick every second, to a queue nobody consumes: beat publishes, the message waits.
    queue = "obs-beat-probe"
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="obs beat probe", task="obs.beat_probe", interval=every_second, queue=queue
    )
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    keys = broker_queue_keys(queue, app.conf.broker_transport_options)
    try:
        beat.start()
        samples = wait_until(
            lambda: _scrape_or_none(beat.extra["metrics_url"]), timeout=60, message=beat.tail()
        )

        assert value(samples, "platform_collector_up", collector="QueueCollector") == 1
        assert value(samples, "platform_collector_up", collector="RunsAndCasesCollector") == 1
        for q in ("default", "ingest", "reconciliation", "fetch"):
            assert value(samples, "celery_queue_length", queue=q) is not None
            assert value(samples, "celery_queue_oldest_message_age_seconds", queue=q) is not None
        assert value(samples, "exception_cases_open", priority="high", age_bucket="3d_7d") == 1
        assert value(samples, "exception_cases_open") == 3
        assert not [s for s in samples if {"pid", "pod"} & set(s.labels)]

        # The tick's log line and its publish belong to one trace rooted at beat.
        def tick_line():
            return next(
                (r for r in beat.log_records() if "Sending due task obs beat probe" in r["event"]), None
            )

        line = wait_until(tick_line, timeout=30, message=beat.tail())
        assert {"timestamp", "level", "logger", "service.name", "trace_id", "span_id"} <= set(line)
        assert line["task"] == "obs.beat_probe"
        spans = wait_until(
            lambda: (
                [
                    s
                    for s in read_spans(beat.env["OTEL_EXPORTER_FILE_DIR"])
                    if s["trace_id"] == line["trace_id"]
                ]
                or None
            ),
            timeout=10,
        )
        root = next(s for s in spans if s["name"] == "beat/obs.beat_probe")
        assert root["parent_span_id"] is None
        publish = next(s for s in spans if s["kind"] == "PRODUCER")
        assert publish["parent_span_id"] == root["span_id"]
        assert wait_until(lambda: client.llen(keys[0]) >= 1, timeout=10)
    finally:
        client.delete(*keys)


def _scrape_or_none(url):
    try:
        return scrape(url)
    except OSError:
        return None


@pytest.mark.django_db(transaction=True)  # partitions for the records are created outside transactions
def test_runs_per_state_and_runs_past_their_deadline():
    from reconciliation.runs import services
    from reconciliation.runs.models import Run
    from reconciliation.runs.tests.factories import ACTOR, AS_OF, records
    from reconciliation.runs.tests.test_matching import reconcile, two_way

    done, left, right = two_way()
    records(left, {"reference": "A", "amount": "1.00"})
    records(right, {"reference": "A", "amount": "1.00"})
    assert reconcile(done).status == "completed"
    stuck, _, _ = two_way()
    pending = services.run_start(
        tenant=stuck.tenant, actor=ACTOR, definition=stuck, trigger="cli", as_of=AS_OF, dispatch=False
    )
    Run.objects.filter(pk=pending.pk).update(deadline=timezone.now() - timedelta(minutes=1))

    samples = _samples(RunsAndCasesCollector())
    assert value(samples, "recon_runs_in_state", state="completed") == 1
    assert value(samples, "recon_runs_in_state", state="pending") == 1
    assert value(samples, "recon_runs_past_deadline") == 1
