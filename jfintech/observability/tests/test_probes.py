"""The signals the chart's probes read (helm/jfintech): a worker's metrics port opens only once
it has connected to the broker; beat touches a heartbeat file on every scheduler tick."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from jfintech.testing import processes
from jfintech.testing.processes import free_port, wait_until


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.django_db
def test_worker_metrics_port_opens_only_after_the_broker_connection(tmp_path):
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = processes.metrics_env(tmp_path, "probe-worker")
    port = int(env["WORKER_METRICS_PORT"])
    worker = processes.celery_worker("probe", "probe-queue", tmp_path, pool="solo", concurrency=1,
                                     REDIS_URL=dead_broker, **env)  # fmt: skip
    try:
        worker.start()
        worker.wait_for_log("Cannot connect to redis", timeout=60)
        # Initialised, retrying the broker: not ready, so the port must still be closed.
        assert not _port_open(port), worker.tail()
    finally:
        worker.stop()

    worker = processes.celery_worker("probe", "probe-queue", tmp_path, pool="solo", concurrency=1, **env)
    try:
        worker.start()
        wait_until(lambda: _port_open(port), timeout=60, message=worker.tail())
    finally:
        worker.stop()


def _beat_alive(path, max_age: int) -> int:
    check = [sys.executable, "-m", "jfintech.observability.heartbeat", str(path), str(max_age)]
    return subprocess.run(check, capture_output=True, check=False).returncode


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_touches_its_heartbeat_file_on_every_tick(tmp_path):
    heartbeat = tmp_path / "beat-heartbeat"
    assert _beat_alive(heartbeat, 120) == 1  # no file: not alive
    beat = processes.celery_beat(tmp_path, BEAT_HEARTBEAT_FILE=heartbeat)
    try:
        beat.start()
        wait_until(heartbeat.exists, timeout=60, message=beat.tail())
        assert _beat_alive(heartbeat, 120) == 0
        # Age the file: the check fails, then the next tick (DatabaseScheduler: <= 5 s) renews it.
        os.utime(heartbeat, (0, 0))
        assert _beat_alive(heartbeat, 120) == 1
        wait_until(lambda: _beat_alive(heartbeat, 120) == 0, timeout=30, message=beat.tail())
    finally:
        beat.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_exits_on_sigterm_while_its_scheduler_waits_on_the_database(tmp_path):
    """SIGTERM while the DatabaseScheduler's setup query waits (right after "beat: Starting").
    Celery's own handler saved the schedule from inside the signal handler, re-entering the
    scheduler and the connection the interrupted query holds: beat never exited (seen in the fault
    suite). The periodic-task table is locked so the setup query blocks; beat must still exit."""
    from django.db import connection, transaction

    beat = processes.celery_beat(tmp_path)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE django_celery_beat_periodictask IN ACCESS EXCLUSIVE MODE")
            beat.start()

            def setup_blocked() -> bool:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted"
                    " AND relation = 'django_celery_beat_periodictask'::regclass"
                )
                return cursor.fetchone()[0] > 0 and "beat: Starting" in beat.tail()

            wait_until(setup_blocked, timeout=60, message=beat.tail())
            beat.proc.send_signal(signal.SIGTERM)
            time.sleep(2)  # the handler runs while the query still waits; then the lock goes
        beat.proc.wait(30)  # a handler waiting on its own interrupted query never returns
    finally:
        beat.stop()
