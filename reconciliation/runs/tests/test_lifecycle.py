"""The run lifecycle without workers: heartbeat, stale re-drive (compare-and-set, bounded), the
attempt fence, a failed run's conservation, a future as-of refused."""

import time
from datetime import date, timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from exceptions.models import Case
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.calendar import tenant_today
from jfintech.tenancy.models import Role
from jfintech.testing.processes import wait_until
from jfintech.tests.factories import member
from reconciliation.matching import engine, sharding
from reconciliation.matching.models import RunShard
from reconciliation.matching.passes import parse_rules
from reconciliation.matching.tests.test_sharding import start, two_definitions
from reconciliation.runs import lifecycle, services
from reconciliation.runs.models import Run, RunStatus
from reconciliation.runs.tests.factories import ACTOR, TenantFactory, definition, records, source_of

pytestmark = pytest.mark.django_db(transaction=True)
NOBODY = {"fetch_queue": "nobody-fetch", "compute_queue": "nobody-compute"}  # messages nobody consumes


def _matching_run():
    """A run whose worker died mid-match: scope frozen, MATCHING, attempt 1, nothing committed."""
    defn = definition(TenantFactory())
    records(source_of(defn, "left"), *({"reference": f"R{i}", "amount": "1"} for i in range(5)))
    records(source_of(defn, "right"), *({"reference": f"R{i}", "amount": "1"} for i in range(3)))
    run = start(defn)
    for side in ("left", "right"):
        services.run_fetch_side(run_id=run.pk, side=side)
    assert lifecycle.run_begin_matching(run.pk) == 1
    return Run.objects.get(pk=run.pk)


def _later(run: Run, seconds: float):
    return run.heartbeat_at + timedelta(seconds=seconds)


def test_a_stale_run_is_redriven_once_per_stale_period_then_failed_with_its_whole_scope_unprocessed(settings):
    settings.RUN_MAX_ATTEMPTS = 2
    run = _matching_run()
    stale = settings.RUN_STALE_HEARTBEAT_SECONDS
    # Fresh: within the stale period nothing happens.
    assert services.runs_redrive_stale(now=_later(run, stale - 1), **NOBODY) == {"redriven": [], "failed": []}
    # Stale: re-driven once; a second reaper at the same moment finds it fresh (the CAS moved the
    # heartbeat with the re-drive count).
    now = _later(run, stale + 1)
    assert services.runs_redrive_stale(now=now, **NOBODY) == {"redriven": [run.pk], "failed": []}
    assert services.runs_redrive_stale(now=now, **NOBODY) == {"redriven": [], "failed": []}
    run.refresh_from_db()
    assert (run.status, run.redrives, run.attempts) == (RunStatus.MATCHING, 1, 1)
    assert AuditEvent.objects.filter(action="recon_run.redriven", object_id=str(run.pk)).count() == 1
    # Stale again after the re-drive (its worker died too): driven RUN_MAX_ATTEMPTS times, failed.
    assert services.runs_redrive_stale(now=_later(run, stale + 1), **NOBODY) == {
        "redriven": [],
        "failed": [run.pk],
    }
    run.refresh_from_db()
    assert (run.status, run.error_code) == (RunStatus.FAILED, "stale_heartbeat")
    assert "after 2 attempt(s)" in run.error
    assert run.conservation == {
        "in_scope": 8,
        "matched": 0,
        "suggested": 0,
        "in_breaks": 0,
        "excluded": 0,
        "unprocessed": 8,
        "unprocessed_reason": f"stale_heartbeat: {run.error}",
        "accounted": 0,
        "ok": True,
    }
    assert run.records_in_scope == 8
    assert Case.objects.filter(definition_id=run.definition_id, break_type="run_failed").count() == 1


def test_with_redrive_off_a_failed_sharded_run_accounts_for_its_committed_shards_and_the_rest(settings):
    settings.RUN_MAX_ATTEMPTS = 1
    _, defn = two_definitions()
    run = start(defn)
    for side in ("left", "right"):
        services.run_fetch_side(run_id=run.pk, side=side)
    lifecycle.run_begin_matching(run.pk)
    # Shard 0 commits, then the worker dies.
    assert sharding.run_match_shard(run_id=run.pk, shard_no=0, shard_count=3) == "done"
    shard = RunShard.objects.get(run=run)
    run.refresh_from_db()
    stale = _later(run, settings.RUN_STALE_HEARTBEAT_SECONDS + 1)
    assert services.runs_redrive_stale(now=stale, **NOBODY) == {"redriven": [], "failed": [run.pk]}
    run.refresh_from_db()
    proof = run.conservation
    assert run.status == RunStatus.FAILED
    assert (proof["matched"], proof["suggested"], proof["in_breaks"], proof["excluded"]) == (
        shard.matched,
        shard.suggested,
        shard.in_breaks,
        shard.excluded,
    )
    assert proof["in_scope"] == 12 * 18 > shard.records_in_scope > 0
    assert proof["unprocessed"] == proof["in_scope"] - shard.records_in_scope
    assert proof["ok"] is True


def test_the_heartbeat_beats_while_a_step_works_and_not_for_a_superseded_attempt(settings):
    run = _matching_run()
    long_ago = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    with lifecycle.RunHeartbeat(run.pk, (RunStatus.MATCHING,), attempt=1):
        wait_until(lambda: Run.objects.get(pk=run.pk).heartbeat_at > long_ago, timeout=10)
    # A compute whose attempt was superseded (attempt 2 began) keeps nobody alive.
    assert lifecycle.run_begin_matching(run.pk) == 2
    Run.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    with lifecycle.RunHeartbeat(run.pk, (RunStatus.MATCHING,), attempt=1):
        time.sleep(3 * settings.RUN_HEARTBEAT_SECONDS)
    assert Run.objects.get(pk=run.pk).heartbeat_at == long_ago


def test_a_superseded_attempt_cannot_complete_the_run():
    run = _matching_run()
    assert lifecycle.run_begin_matching(run.pk) == 2  # a re-driven compute began meanwhile
    run = Run.objects.select_related("definition", "tenant", "rule_version").get(pk=run.pk)

    def complete_as_attempt_1():
        with transaction.atomic():
            result = engine.reconcile(lifecycle.run_context(run), parse_rules(run.rule_version.rules))
            lifecycle.run_complete(run, result, time.perf_counter(), attempt=1)

    with pytest.raises(lifecycle.Superseded):
        complete_as_attempt_1()
    assert Run.objects.get(pk=run.pk).status == RunStatus.MATCHING  # rolled back: attempt 2 completes it
    assert services.run_compute(run_id=run.pk) == "completed"
    assert Run.objects.get(pk=run.pk).attempts == 3


def test_a_run_as_of_a_future_date_is_refused():
    defn = definition(TenantFactory())
    tomorrow = tenant_today(defn.tenant) + timedelta(days=1)
    with pytest.raises(ApplicationError) as refused:
        services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=tomorrow)
    assert (refused.value.code, refused.value.status) == ("as_of_in_future", 400)
    assert not Run.objects.filter(definition=defn).exists()
    c = APIClient()
    c.force_login(member(defn.tenant, Role.ANALYST))
    c.defaults["HTTP_X_TENANT"] = defn.tenant.slug
    body = {"definition": defn.name, "as_of": tomorrow.isoformat()}
    response = c.post("/api/v1/reconciliation/runs/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "as_of_in_future"
    assert tomorrow.isoformat() in response.json()["error"]["message"]
    # Today is fine (with an explicit window too).
    today = tenant_today(defn.tenant)
    assert services.run_window(defn, as_of=today)[0] == today
    assert services.run_window(defn, as_of=today, date_from=date(2026, 1, 1), date_to=today)[0] == today
