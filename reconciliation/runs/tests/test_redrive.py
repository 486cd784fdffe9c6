"""SIGKILL of a worker's MAIN process mid-match (its pool child dies with it: prefork sets the
children's parent-death signal), with real worker processes on private queues.

The reaper (called here on the test's own schedule, as beat calls it every minute) re-drives the
run once its heartbeat is older than RUN_STALE_HEARTBEAT_SECONDS; the broker redelivers the lost
compute too once CELERY_VISIBILITY_TIMEOUT (30 s in tests) passes. Whichever comes first, the run
completes once, with the undisturbed run's outcome. With re-drive off it ends FAILED, accounting for
every record of its scope."""

import os
import signal
import uuid

import pytest
from django.conf import settings
from django.db import connection, connections

from bench.reconcile_depth import outcome_digest
from exceptions.models import Case
from jfintech.audit.models import AuditEvent
from jfintech.testing import processes
from jfintech.testing.processes import wait_until
from reconciliation.matching.tests.test_sharding import start, two_definitions
from reconciliation.runs import services, tasks
from reconciliation.runs.models import Break, Match, Run, RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]


def _compute_blocked() -> list:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%%INSERT INTO reconciliation_break%%'"
        )
        return cursor.fetchall()


def _terminal(run_id: int) -> Run | None:
    return Run.objects.filter(pk=run_id, status__in=[RunStatus.COMPLETED, RunStatus.FAILED]).first()


@pytest.mark.parametrize("max_attempts", [3, 1], ids=["redrive", "redrive-off"])
def test_a_killed_worker_main_process_mid_match(tmp_path, settings, max_attempts):
    settings.RUN_MAX_ATTEMPTS = max_attempts
    plain, disturbed = two_definitions()
    baseline = services.run_execute_inline(start(plain))
    suffix = uuid.uuid4().hex[:8]
    queues = {"fetch_queue": f"kill-fetch-{suffix}", "compute_queue": f"kill-compute-{suffix}"}
    first = processes.celery_worker(f"doomed-{suffix}", ",".join(queues.values()), tmp_path, concurrency=1)
    second = processes.celery_worker(f"heir-{suffix}", ",".join(queues.values()), tmp_path, concurrency=1)
    first.start()
    blocker = connections.create_connection("default")
    try:
        first.wait_for_log(" ready.", timeout=90)
        # Hold the compute mid-transaction (matches written, breaks waiting behind our lock).
        blocker.set_autocommit(False)
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE reconciliation_break IN EXCLUSIVE MODE")
        run = start(disturbed)
        tasks.run_chord(run.pk, **queues).apply_async()
        wait_until(_compute_blocked, timeout=60, message="the compute never reached the breaks")
        assert Run.objects.get(pk=run.pk).status == RunStatus.MATCHING
        os.kill(first.proc.pid, signal.SIGKILL)  # the worker's main process
        first.proc.wait(10)
        blocker.rollback()  # the orphaned backend wakes, finds its client gone, rolls back
        if max_attempts > 1:
            second.start()
            second.wait_for_log(" ready.", timeout=90)

        def reaped():  # the reaper, every half second (beat: every minute)
            services.runs_redrive_stale(**queues)
            return _terminal(run.pk)

        # Bounded by the stale setting plus one beat interval (the re-drive), plus the compute.
        run = wait_until(reaped, timeout=settings.RUN_STALE_HEARTBEAT_SECONDS + 60 + 60)
        if max_attempts > 1:
            # The broker's redelivery of the lost compute arrives too (now or before the re-drive):
            # whichever came second found the run terminal.
            def terminal_answered():
                return [
                    r
                    for r in second.log_records() + _plain_lines(second)
                    if "compute_reconciliation" in str(r) and "'terminal'" in str(r)
                ]

            wait_until(terminal_answered, timeout=settings.CELERY_VISIBILITY_TIMEOUT + 90)
    finally:
        blocker.close()
        first.stop()
        second.stop()
    run.refresh_from_db()
    if max_attempts == 1:
        assert (run.status, run.error_code, run.redrives) == (RunStatus.FAILED, "stale_heartbeat", 0)
        proof = run.conservation
        assert proof["in_scope"] == baseline.records_in_scope
        assert proof["unprocessed"] == proof["in_scope"]  # the killed compute committed nothing
        assert proof["ok"] is True
        assert proof["unprocessed_reason"].startswith("stale_heartbeat: no heartbeat for")
        assert not Match.objects.filter(run_id=run.pk).exists()
        return
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.attempts >= 2  # a second compute began (re-driven or redelivered)
    assert outcome_digest(run.pk) == outcome_digest(baseline.pk)
    assert run.conservation == baseline.conservation
    assert Match.objects.filter(run_id=run.pk).count() == Match.objects.filter(run_id=baseline.pk).count()
    assert Break.objects.filter(run=run).count() == Break.objects.filter(run=baseline).count()
    assert Case.objects.filter(definition_id=disturbed.pk).count() == Break.objects.filter(run=run).count()
    assert AuditEvent.objects.filter(action="recon_run.completed", object_id=str(run.pk)).count() == 1


def _plain_lines(process) -> list[str]:
    return [line for line in process.log_path.read_text(errors="replace").splitlines() if "succeeded" in line]


def test_the_stale_setting_is_below_the_visibility_timeout():
    assert settings.RUN_STALE_HEARTBEAT_SECONDS < settings.CELERY_VISIBILITY_TIMEOUT
