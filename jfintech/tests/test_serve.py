"""`manage.py serve` (the demo) keeps serving when one of its children dies: the child is restarted
loudly, the others are left alone; only a crash loop stops everything. Real processes throughout."""

import os
import re
import signal
import sys

import pytest
import redis
from django.conf import settings
from django.db import connection

from jfintech.health import services as health
from jfintech.supervisor import CrashLoop, Supervisor
from jfintech.testing import processes
from jfintech.testing.processes import wait_until

STARTED = re.compile(r"started (\S+) \(pid (\d+)\)")


def _started(process) -> list[tuple[str, int]]:
    return [(name, int(pid)) for name, pid in STARTED.findall(process.log_path.read_text(errors="replace"))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().split()[2] != "Z"


@pytest.mark.slow  # a whole serve: web, workers and beat
@pytest.mark.django_db(transaction=True)
@pytest.mark.workers
def test_a_worker_killed_under_serve_is_restarted_and_nothing_else_stops(tmp_path):
    port = processes.free_port()
    serve = processes.ManagedProcess(
        "serve",
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        processes.base_env(tmp_path, **processes.metrics_env(tmp_path, "serve", port_variable=None)),
        tmp_path / "serve.log",
    )
    serve.start()
    try:
        serve.wait_for_log("READY ", timeout=240)
        serve.wait_for_log("log in with", timeout=10)  # the demo logins, again after READY
        log = serve.log_path.read_text(errors="replace")
        assert log.index("log in with") > log.index("READY ")
        before = dict(_started(serve))
        assert {"web", "beat", "worker-reconciliation", "worker-fetch"} <= set(before)
        killed = before["worker-reconciliation"]
        os.kill(killed, signal.SIGKILL)  # the worker's main process, as in the issue

        def restarted():
            again = [pid for name, pid in _started(serve) if name == "worker-reconciliation"]
            return again[-1] if len(again) == 2 else None

        new_pid = wait_until(restarted, timeout=30, message="worker-reconciliation was not restarted")
        assert new_pid != killed
        said = f"worker-reconciliation (pid {killed}) exited (signal SIGKILL); restart 1 in 1s"
        assert said in serve.tail(80)
        assert serve.proc.poll() is None  # serve itself still serving
        others = {name: pid for name, pid in before.items() if name != "worker-reconciliation"}
        assert all(_alive(pid) for pid in others.values()), others
        assert [name for name, _ in _started(serve)].count("web") == 1  # nothing else was restarted
        # And the restarted worker serves its queue: a chord through every queue completes.
        check = health.pipeline_check_start(timeout_s=60)
        wait_until(lambda: check.refresh_from_db() or check.status != "pending", timeout=90)
        assert check.status == "completed", check.error
    finally:
        serve.stop(timeout=60)
    assert "stopped" in serve.tail(5)
    assert not any(_alive(pid) for _, pid in _started(serve))
    # serve stopped its children only, never the servers it inherited: on a fresh machine those are
    # the suite's own embedded PostgreSQL and Redis, which the rest of the suite still needs.
    assert "stopped embedded services" not in serve.tail(5)
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5).ping()


@pytest.mark.slow  # stops everything serve started: in the embedded pass, the session's own servers
def test_a_crash_loop_stops_every_child(tmp_path):
    lines = []
    supervisor = Supervisor(cwd=tmp_path, write=lines.append, max_restarts=2, window_s=60)
    supervisor.add("flaky", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    supervisor.add("steady", [sys.executable, "-c", "import time; time.sleep(120)"], dict(os.environ))
    supervisor.start_all()
    steady = supervisor.children["steady"].proc
    clock = 0.0

    def until_it_gives_up():
        nonlocal clock
        for _ in range(10):
            clock += 5  # past any backoff (1 s, 2 s) at once: the test does not wait for it
            supervisor.children["flaky"].proc.wait(10)
            supervisor.poll(now=clock)

    with pytest.raises(CrashLoop, match="flaky exited \\(status 3\\) 3 times within 60s"):
        until_it_gives_up()
    assert steady.poll() is not None  # stopped with everything else
    assert len([line for line in lines if line.startswith("started flaky")]) == 3
    assert "!!! flaky" in lines[-1]
