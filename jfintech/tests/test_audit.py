"""The audit trail: chained, append-only, tamper-evident, linear under concurrent writers."""

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django_celery_beat.models import PeriodicTask

from jfintech import audit
from jfintech.audit import chain
from jfintech.audit.models import AuditChainHead, AuditEvent
from jfintech.audit.services import audit_chains_verify
from jfintech.testing.processes import ROOT, base_env
from jfintech.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = audit.Actor.for_system("test")


def _record(tenant, n=1, action="thing.change"):
    for i in range(n):
        with transaction.atomic():
            audit.record(
                tenant=tenant,
                actor=SYSTEM,
                action=action,
                object_type="thing",
                object_id=i,
                after={"i": i, "amount": "10.50"},
            )


def _events(tenant):
    return list(AuditEvent.objects.filter(tenant=tenant).order_by("seq"))


def _verify_fails_naming(tenant, event_id=None, text=""):
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", tenant=tenant.slug)
    message = str(failure.value)
    if event_id is not None:
        assert f"event id={event_id} " in message, message
    assert text in message, message
    return message


def _tamper(sql, params=()):
    """What an attacker with the owner's rights does: switch the guard off, change rows, switch it on."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE jfintech_auditevent DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE jfintech_auditchainhead DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE jfintech_auditevent ENABLE TRIGGER USER")
        cursor.execute("ALTER TABLE jfintech_auditchainhead ENABLE TRIGGER USER")


def test_events_form_a_signed_chain_per_tenant(tenant_a, tenant_b):
    _record(tenant_a, 3)
    _record(tenant_b, 2)
    events = _events(tenant_a)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == chain.GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    head = AuditChainHead.objects.get(chain=tenant_a.pk)
    assert (head.seq, head.hash) == (3, events[-1].hash)
    assert [e.seq for e in _events(tenant_b)] == [1, 2]
    call_command("verify_audit")  # every chain, no error


def test_update_and_delete_are_rejected_even_for_the_owner(tenant_a):
    _record(tenant_a, 1)
    event = _events(tenant_a)[0]
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="thing.other")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(IntegrityError, match="forward"), transaction.atomic():
        AuditChainHead.objects.filter(chain=tenant_a.pk).update(seq=0)
    # Nor can a transaction rewrite its own, not yet sealed, event.
    with transaction.atomic():
        fresh = audit.record(tenant=tenant_a, actor=SYSTEM, action="thing.change")
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            AuditEvent.objects.filter(pk=fresh.pk).update(after={"forged": True})


def test_the_runtime_role_writes_the_trail_but_cannot_truncate_or_delete_it(tenant_a):
    role = settings.DB_RUNTIME_ROLE
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {role}")
        audit.record(tenant=tenant_a, actor=SYSTEM, action="thing.change")
    assert _events(tenant_a)[0].seq == 1  # recorded and sealed with the runtime role's rights
    for statement in (
        "TRUNCATE jfintech_auditevent",
        "DELETE FROM jfintech_auditevent",
        "TRUNCATE jfintech_auditchainhead",
    ):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {role}")
            with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
                cursor.execute(statement)
    assert AuditEvent.objects.filter(tenant=tenant_a).count() == 1


def test_a_row_altered_in_the_database_is_detected(tenant_a):
    _record(tenant_a, 3)
    second = _events(tenant_a)[1]
    _tamper(
        'UPDATE jfintech_auditevent SET after = \'{"i": 1, "amount": "99.00"}\' WHERE id = %s', [second.pk]
    )
    _verify_fails_naming(tenant_a, second.pk, "altered")


def test_a_rewritten_and_recomputed_chain_is_detected(tenant_a):
    """The attacker knows the algorithm and rewrites every hash after the change, but not the key."""
    _record(tenant_a, 4)
    events = _events(tenant_a)
    target = events[1]
    _tamper("UPDATE jfintech_auditevent SET actor_display = 'someone else' WHERE id = %s", [target.pk])
    prev = events[0].hash
    fields = chain.CANONICAL_FIELDS
    for event in events[1:]:
        row = AuditEvent.objects.filter(pk=event.pk).values(*fields).get()
        row["prev_hash"] = prev
        prev = chain.event_hash(row)
        forged = chain._mac(b"guessed-key", "event", tenant_a.pk, event.seq, prev)
        _tamper(
            "UPDATE jfintech_auditevent SET prev_hash = %s, hash = %s, signature = %s WHERE id = %s",
            [row["prev_hash"], prev, forged, event.pk],
        )
    _tamper("UPDATE jfintech_auditchainhead SET hash = %s WHERE chain = %s", [prev, tenant_a.pk])
    _verify_fails_naming(tenant_a, target.pk, "signature invalid")


def test_removed_events_and_a_rewound_head_are_detected(tenant_a):
    _record(tenant_a, 3)
    events = _events(tenant_a)
    _tamper("DELETE FROM jfintech_auditevent WHERE id = %s", [events[-1].pk])
    _verify_fails_naming(tenant_a, text="head is at seq 3 but the events end at seq 2")
    # Rewinding the head to the surviving last event, with that event's own signature, fails too.
    _tamper(
        "UPDATE jfintech_auditchainhead SET seq = 2, hash = %s, signature = %s WHERE chain = %s",
        [events[1].hash, events[1].signature, tenant_a.pk],
    )
    _verify_fails_naming(tenant_a, text="head signature invalid")


def test_verify_audit_exits_non_zero_naming_the_first_bad_event(tenant_a):
    _record(tenant_a, 2)
    first = _events(tenant_a)[0]
    _tamper("UPDATE jfintech_auditevent SET action = 'x.y' WHERE id = %s", [first.pk])
    result = subprocess.run(
        [sys.executable, "manage.py", "verify_audit", "--tenant", tenant_a.slug],
        cwd=ROOT,
        env=base_env(ROOT / ".local"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"event id={first.pk} seq=1" in result.stderr


def test_concurrent_writers_keep_one_linear_chain():
    tenants = [TenantFactory(slug="busy"), TenantFactory(slug="quiet")]
    writers, per_writer = 8, 10
    barrier = threading.Barrier(writers)

    def write(i):
        try:
            barrier.wait()
            for n in range(per_writer):
                with transaction.atomic():
                    audit.record(tenant=tenants[0], actor=SYSTEM, action="thing.change", object_id=f"{i}-{n}")
                    if n % 3 == 0:  # some transactions write to both tenants
                        audit.record(
                            tenant=tenants[1], actor=SYSTEM, action="thing.change", object_id=f"{i}-{n}"
                        )
        finally:
            connection.close()

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))

    busy = _events(tenants[0])
    assert [e.seq for e in busy] == list(range(1, writers * per_writer + 1))
    assert len({e.object_id for e in busy}) == writers * per_writer
    reports = audit_chains_verify(tenants=tenants)
    assert all(r.ok for r in reports), [r.describe() for r in reports]
    assert reports[1].events == writers * 4


def test_the_chain_lock_is_taken_at_commit_not_at_record(tenant_a):
    """A long transaction that audited early does not block the tenant's other writers."""
    recorded, release = threading.Event(), threading.Event()

    def long_transaction():
        try:
            with transaction.atomic():
                audit.record(tenant=tenant_a, actor=SYSTEM, action="load.start")
                recorded.set()
                assert release.wait(30)  # ... a long load ...
        finally:
            connection.close()

    thread = threading.Thread(target=long_transaction)
    thread.start()
    try:
        assert recorded.wait(30)
        with transaction.atomic():  # would wait for the lock if record() had taken it
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            audit.record(tenant=tenant_a, actor=SYSTEM, action="quick.change")
    finally:
        release.set()
        thread.join(30)
    assert [e.action for e in _events(tenant_a)] == ["quick.change", "load.start"]
    call_command("verify_audit", tenant=tenant_a.slug)


def _record_then_fail(tenant):
    with transaction.atomic():  # a savepoint inside the caller's transaction
        audit.record(tenant=tenant, actor=SYSTEM, action="rolled.back")
        raise RuntimeError


def test_a_rolled_back_savepoint_leaves_no_gap(tenant_a):
    with transaction.atomic():
        audit.record(tenant=tenant_a, actor=SYSTEM, action="kept.one")
        with pytest.raises(RuntimeError):
            _record_then_fail(tenant_a)
        audit.record(tenant=tenant_a, actor=SYSTEM, action="kept.two")
    assert [(e.seq, e.action) for e in _events(tenant_a)] == [(1, "kept.one"), (2, "kept.two")]
    call_command("verify_audit", tenant=tenant_a.slug)


def test_verification_is_exported_as_metrics_and_scheduled_daily(tenant_a):
    from prometheus_client import REGISTRY

    _record(tenant_a, 2)
    audit_chains_verify(tenants=[tenant_a])
    assert REGISTRY.get_sample_value("audit_chain_verified", {"tenant": "a"}) == 1
    assert REGISTRY.get_sample_value("audit_chain_events", {"tenant": "a"}) == 2
    _tamper("UPDATE jfintech_auditevent SET action = 'x.y' WHERE tenant_id = %s", [tenant_a.pk])
    audit_chains_verify(tenants=[tenant_a])
    assert REGISTRY.get_sample_value("audit_chain_verified", {"tenant": "a"}) == 0

    task = PeriodicTask.objects.select_related("crontab").get(name="audit.verify_chains")
    assert task.task == "audit.verify_chains"
    assert (task.crontab.minute, task.crontab.hour) == ("17", "3")
    assert task.expire_seconds
    assert task.expires is None
    assert task.enabled


@pytest.mark.workers
def test_the_daily_task_runs_in_a_real_worker(tenant_a, celery_workers):
    from jfintech.audit.tasks import verify_chains

    _record(tenant_a, 2)
    result = verify_chains.delay().get(timeout=60)
    assert result["broken"] == []
    assert result["chains"] >= 2


def test_record_many_appends_one_chained_event_per_item(tenant_a):
    with transaction.atomic():
        audit.record_many(
            tenant=tenant_a,
            actor=SYSTEM,
            events=[
                {"action": "case.opened", "object_type": "case", "object_id": i, "after": {"n": i}}
                for i in range(50)
            ],
        )
    assert [e.seq for e in _events(tenant_a)] == list(range(1, 51))
    call_command("verify_audit", tenant=tenant_a.slug)
