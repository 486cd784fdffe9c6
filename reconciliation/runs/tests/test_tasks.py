"""The chord in real worker processes: delivery twice, a missing part, a failing header, a killed
worker child. Invariants checked after each: the run is terminal, nothing doubled."""

import os
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, connections
from django.utils import timezone

from exceptions.models import Case
from jfintech.testing import processes
from jfintech.testing.processes import wait_until
from reconciliation.runs import services, tasks
from reconciliation.runs.models import Break, Match, MatchItem, Run, RunPart, RunStatus
from reconciliation.runs.tests.factories import ACTOR, AS_OF, TenantFactory, definition, records, source_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]


def _terminal(run_id: int, timeout: float = 60) -> Run:
    return wait_until(
        lambda: Run.objects.filter(pk=run_id, status__in=["completed", "failed"]).first(),
        timeout=timeout,
        message=f"run {run_id} did not finish in {timeout}s",
    )


def _two_way_with_data(pairs: int = 20, breaks: int = 3):
    defn = definition(TenantFactory())
    left, right = source_of(defn, "left"), source_of(defn, "right")
    records(left, *({"reference": f"R{i}", "amount": f"{i}.50"} for i in range(pairs + breaks)))
    records(right, *({"reference": f"R{i}", "amount": f"{i}.50"} for i in range(pairs)))
    return defn


def test_three_way_chord_runs_its_fetches_and_compute_in_worker_processes(celery_workers):
    defn = definition(TenantFactory(), kind="three_way")
    pos, trades, setts = (source_of(defn, s) for s in ("position", "left", "right"))
    records(pos, {"account": "A", "instrument": "I", "quantity": "5"})
    records(trades, {"reference": "T1", "account": "A", "instrument": "I", "quantity": "5", "amount": "50"})
    records(setts, {"reference": "T1", "account": "A", "instrument": "I", "quantity": "5", "amount": "50"})
    run = services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="api", as_of=AS_OF)
    run = _terminal(run.pk)
    assert run.status == RunStatus.COMPLETED, run.error
    assert set(RunPart.objects.filter(run=run).values_list("side", flat=True)) == {
        "position",
        "left",
        "right",
    }
    assert (run.matched, run.excluded, run.in_breaks, run.attempts) == (2, 1, 0, 1)

    def compute_logged():
        return [
            r
            for r in celery_workers["main"].log_records()
            if r.get("event") == "recon_run_completed" and r.get("recon.run_id") == run.pk
        ]

    line = wait_until(compute_logged, timeout=10)[0]
    assert line["trace_id"] == run.trace_id or not run.trace_id
    fetched = [
        r
        for r in celery_workers["fetch"].log_records()
        if r.get("event") == "recon_side_fetched" and r.get("recon.run_id") == run.pk
    ]
    assert len(fetched) == 3


def test_each_task_delivered_twice_gives_one_outcome(celery_workers):
    defn = _two_way_with_data()
    run = services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="api", dispatch=False)
    # The whole chord twice: every header and the callback are delivered twice.
    results = [tasks.run_chord(run.pk).apply_async() for _ in range(2)]
    outcomes = sorted(r.get(timeout=60) for r in results)
    assert outcomes == ["completed", "terminal"]
    # And a straggler header after completion changes nothing.
    tasks.fetch_left.apply_async((run.pk,), queue="fetch").get(timeout=30)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.attempts == 1
    assert Match.objects.filter(run_id=run.pk).count() == 20
    assert MatchItem.objects.filter(match__run_id=run.pk).count() == 40
    assert Break.objects.filter(run=run).count() == 3
    assert RunPart.objects.filter(run=run).count() == 2
    assert run.records_in_scope == 43
    assert Case.objects.filter(definition_id=defn.pk).count() == 3
    from jfintech.audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="recon_run.completed", object_id=str(run.pk)).count() == 1


def test_callback_retries_while_a_part_is_missing_then_fails_the_run_at_the_deadline(celery_workers):
    defn = _two_way_with_data(pairs=1, breaks=0)
    run = services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="api", dispatch=False)
    services.run_fetch_side(run_id=run.pk, side="left")  # the right side never arrives
    Run.objects.filter(pk=run.pk).update(deadline=timezone.now() + timedelta(seconds=3))
    result = tasks.compute_reconciliation.apply_async((run.pk,), queue="reconciliation")
    assert result.get(timeout=60) == "failed"
    run = _terminal(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error_code == "parts_missing"
    assert "right" in run.error
    assert Case.objects.get(definition_id=defn.pk, break_type="run_failed").status == "open"


def test_a_failing_header_fails_the_run_loudly_through_the_connector_error(celery_workers):
    defn = _two_way_with_data(pairs=1, breaks=0)
    right = source_of(defn, "right")
    right.connector = {
        "type": "http",
        "url": f"http://127.0.0.1:{processes.free_port()}/x",
        "retries": 0,
        "connect_timeout_s": 1,
    }
    right.save()
    run = services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="api")
    run = _terminal(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error_code == "connector_failed"
    assert "side right" in run.error
    assert Case.objects.filter(definition_id=defn.pk, break_type="run_failed").count() == 1

    def failed_logged():
        return [
            r
            for r in celery_workers["fetch"].log_records()
            if r.get("event") == "recon_run_failed" and r.get("recon.run_id") == run.pk
        ]

    line = wait_until(failed_logged, timeout=10)[0]
    assert line["level"] == "error"
    assert line["error_code"] == "connector_failed"


def test_reaper_fails_a_stuck_run_loudly():
    defn = _two_way_with_data(pairs=1, breaks=0)
    run = services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="api", dispatch=False)
    Run.objects.filter(pk=run.pk).update(status="fetching", deadline=timezone.now() - timedelta(seconds=1))
    assert services.runs_reap() == [run.pk]
    assert services.runs_reap() == []
    run.refresh_from_db()
    assert (run.status, run.error_code) == ("failed", "deadline")
    assert Case.objects.filter(definition_id=defn.pk, break_type="run_failed").count() == 1
    # A late compute for it changes nothing.
    assert services.run_compute(run_id=run.pk) == "terminal"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_a_worker_child_killed_mid_compute_completes_on_redelivery_without_doubles(celery_workers, tmp_path):
    """The compute is held mid-transaction (matches written, breaks blocked behind a table lock the
    test holds), its worker child is SIGKILLed, and the redelivered task must finish the run with
    exactly one set of matches and cases."""
    defn = _two_way_with_data(pairs=50, breaks=5)
    suffix = uuid.uuid4().hex[:8]
    fetch_q, compute_q = f"kill-fetch-{suffix}", f"kill-compute-{suffix}"
    worker = processes.celery_worker(f"killer-{suffix}", f"{fetch_q},{compute_q}", tmp_path, concurrency=1)
    worker.start()
    blocker = connections.create_connection("default")
    try:
        worker.wait_for_log(" ready.", timeout=90)
        blocker.set_autocommit(False)
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE reconciliation_break IN EXCLUSIVE MODE")
        run = services.run_start(
            tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="api", dispatch=False
        )
        tasks.run_chord(run.pk, fetch_queue=fetch_q, compute_queue=compute_q).apply_async()

        def compute_blocked():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%%INSERT INTO reconciliation_break%%'"
                )
                return cursor.fetchall()

        wait_until(compute_blocked, timeout=60, message="the compute never reached the breaks")
        assert Run.objects.get(pk=run.pk).status == RunStatus.MATCHING
        (child,) = _children(worker.proc.pid)
        os.kill(child, signal.SIGKILL)
        blocker.rollback()  # the killed attempt's backend wakes, finds its client gone, rolls back
        run = _terminal(run.pk, timeout=90)
    finally:
        blocker.close()
        worker.stop()
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.attempts >= 2
    assert Match.objects.filter(run_id=run.pk).count() == 50
    assert MatchItem.objects.filter(definition_id=defn.pk).count() == 100
    assert Break.objects.filter(run=run).count() == 5
    assert Case.objects.filter(definition_id=defn.pk).count() == 5
    assert run.conservation["ok"] is True
