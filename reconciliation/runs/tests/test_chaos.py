"""The fault suite (docs/reliability.md): faults injected at points of a run, on PRIVATE PostgreSQL
and Redis servers with real worker processes, each trial followed by the same invariant check.

Isolation: this test process never touches a database. The servers, the worker and the scenario
driver (chaos_driver.py, a Django process speaking JSON lines) are subprocesses pointed at the
private servers; the test holds a phase open with a raw psycopg connection to the private server
(a table lock the phase must wait for), injects the fault, releases, and plays beat's reaper.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from jfintech import devservices
from jfintech.testing import chaos, processes
from jfintech.testing.processes import ROOT, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

STALE = 6  # RUN_STALE_HEARTBEAT_SECONDS for the suite: a dead worker's run is re-driven within seconds
RESULTS: list[dict] = []  # one row per trial, written to the table at the end of the session
ALERT_RULES = ROOT / "alerts" / "jfintech.rules.yaml"

# A phase of the run held open: the table its statements write, which the test locks.
POINTS = {
    "fetching": "reconciliation_run_scope",
    "matching": "reconciliation_match",
    "persisting": "reconciliation_break",
    "syncing-cases": "exceptions_case",
}


class Driver:
    def __init__(self, env: dict, log: Path):
        self._log = open(log, "ab")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciliation.runs.tests.chaos_driver"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
        )  # fmt: skip
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def __call__(self, op: str, **kwargs):
        self.send(op, **kwargs)
        return self.receive(op)

    def send(self, op: str, **kwargs):
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")

    def receive(self, op: str):
        answer = json.loads(self.proc.stdout.readline())
        if not answer["ok"]:
            raise AssertionError(f"driver {op}: {answer['error']}\n{answer['traceback']}")
        return answer["result"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)
        self._log.close()


class Env:
    """The private servers, the worker, the driver."""

    def __init__(self, base: Path):
        self.base = base
        self.pg = chaos.PrivatePostgres(base).start()
        # devservices starts PostgreSQL with synchronous_commit=off (fast tests): a crash could then
        # lose a commit already acknowledged. The suite's sessions commit as production's do.
        self.sql(f"ALTER DATABASE {devservices.DB_NAME} SET synchronous_commit = on")
        assert self.sql("SHOW synchronous_commit") == [("on",)]
        self.redis = chaos.PrivateRedis(base).start(persistent=False)
        self.metrics_dir = base / "prometheus"
        self.metrics_dir.mkdir()
        self.env = processes.base_env(
            base, DATABASE_URL=self.pg.url, REDIS_URL=self.redis.url, CELERY_KEY_PREFIX="chaos:",
            RUN_STALE_HEARTBEAT_SECONDS=STALE, RUN_HEARTBEAT_SECONDS=1,
            # Room for a worker's broker reconnect backoff after a Redis restart (it grows to tens
            # of seconds on a loaded machine) within the re-drive budget; the bound itself is
            # tested in runs/tests/test_lifecycle.py and test_redrive.py.
            RUN_MAX_ATTEMPTS=6,
            PROMETHEUS_MULTIPROC_DIR=self.metrics_dir,
        )  # fmt: skip
        self.driver = Driver(self.env, base / "driver.log")
        self.driver("migrate")
        self.worker = None
        self.generation = 0
        self.start_worker()

    def start_worker(self):
        self.generation += 1
        worker = processes.celery_worker(f"chaos{self.generation}", "default,ingest,reconciliation,fetch",
                                         self.base, concurrency=2)  # fmt: skip
        worker.env = self.env
        self.worker = worker.start()
        worker.wait_for_log(" ready.", timeout=90)

    def ensure_worker(self):
        if self.worker.proc.poll() is not None:
            self.worker.stop()
            self.start_worker()

    def sql(self, query: str, params=None):
        with psycopg.connect(self.pg.url, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def close(self):
        for stop in (self.worker.stop, self.driver.close, self.redis.stop, self.pg.stop):
            try:
                stop()
            except Exception as exc:  # stop the rest, then say so
                print(f"chaos teardown: {stop} failed: {exc}")  # noqa: T201 (the suite's table, in the test output)


@pytest.fixture(scope="session")
def chaos_env():
    # Not under pytest's basetemp: the embedded PostgreSQL runs as its own user (when we are root)
    # and must reach its data directory; a directory of our own, readable, removed at the end.
    base = Path(tempfile.mkdtemp(prefix="jfintech-chaos-"))
    base.chmod(0o755)
    env = Env(base)
    try:
        yield env
    finally:
        _write_table()
        env.close()
        shutil.rmtree(base, ignore_errors=True)


class Hold:
    """A phase held open: the table the phase writes, locked by the test until release()."""

    def __init__(self, env: Env, point: str | None, table: str | None = None):
        self.env, self.table = env, table or POINTS.get(point)
        self.conn = None
        if self.table:
            self.conn = psycopg.connect(env.pg.url, connect_timeout=5)
            self.conn.execute(f"LOCK TABLE {self.table} IN EXCLUSIVE MODE")

    def waiting(self) -> list[int]:
        """The backends (a worker's) blocked on the held table: from pg_locks, not the statement's
        text, which pg_stat_activity cuts at 1 kB (the case sync's statement names its table after
        a long JSON literal)."""
        rows = self.env.sql(
            "SELECT DISTINCT pid FROM pg_locks WHERE NOT granted AND locktype = 'relation'"
            " AND relation = %s::regclass",
            [self.table],
        )
        return [r[0] for r in rows]

    def release(self):
        if self.conn is not None and not self.conn.closed:
            with contextlib.suppress(psycopg.OperationalError):  # the server restarted under it
                self.conn.rollback()
                self.conn.close()


def trial(env: Env, fault: str, point: str | None, inject, *, expect_alerts=(), duplicate_start=False,
          redis_down_at_start=False, after=None, deadline=240, lose_callback=False) -> dict:  # fmt: skip
    """One trial: a fresh definition, a run started through the API, the fault at ``point``, then
    the reaper every second (beat's job) until every run is terminal, ``after(env)`` (the end of a
    fault that outlives the run), then the invariant check."""
    env.ensure_worker()
    seeded = env.driver("seed", accounts=12, deadline=deadline)
    before = env.driver("metrics")
    hold = Hold(env, point)
    idem = f"chaos-{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    acknowledged: dict[str, int] = {}
    responses = []
    try:
        if redis_down_at_start:
            env.redis.stop()
        if lose_callback:  # the run committed, its chord's parts sent without the callback
            created = env.driver("create", definition=seeded["definition"], idem=idem)
            env.driver("send", run=created["id"], what="header")
            answer = {"status": 202, "body": created}
        else:
            answer = env.driver("start", definition=seeded["definition"], key=seeded["key"], idem=idem)
        responses.append(answer["status"])
        if redis_down_at_start:
            env.redis.start()
        if answer["status"] == 202:
            acknowledged[idem] = answer["body"]["id"]
        if duplicate_start:  # the client retries the same request
            again = env.driver("start", definition=seeded["definition"], key=seeded["key"], idem=idem)
            responses.append(again["status"])
            if again["status"] == 202:
                acknowledged.setdefault(idem, again["body"]["id"])
        if hold.table:
            wait_until(
                hold.waiting, timeout=90, message=f"the run never reached {point}:\n{env.worker.tail()}"
            )
        inject(env, hold)
    finally:
        hold.release()
    return conclude(env, fault, point, seeded["definition"], started=started, before=before,
                    acknowledged=acknowledged, responses=responses, expect_alerts=expect_alerts,
                    after=after)  # fmt: skip


def conclude(env: Env, fault: str, point: str | None, definition: int, *, started: float, before: dict,
             acknowledged: dict, responses: list, expect_alerts=(), after=None,
             slots: int = 1) -> dict:  # fmt: skip
    """The end of a trial: the reaper every second until every run of ``definition`` is terminal,
    ``after(env)``, the invariant check, the alerts, the row of the table. ``slots``: how many runs
    the trial asked for (one, or one per slot of a schedule): more is a duplicate."""
    seeded = {"definition": definition}

    def all_terminal():
        # The supervisor's part (Kubernetes, or `serve` locally): a worker that died is started again.
        # Celery 5.7's worker can die on a broker connection lost while idle ("Unrecoverable error:
        # AttributeError 'NoneType' object has no attribute 'hostname'"; docs/reliability.md).
        env.ensure_worker()
        env.driver("reap")
        states = env.driver("runs", definition=seeded["definition"])
        return states if states and all(s in ("completed", "failed") for _, s in states) else None

    try:
        runs = wait_until(all_terminal, timeout=180, interval=1.0)
    except TimeoutError:
        runs = env.driver("runs", definition=seeded["definition"])
    elapsed = time.monotonic() - started
    if after is not None:
        after(env)
    unacknowledged = sum(1 for status in responses if status != 202)
    invariants = env.driver("check", definition=seeded["definition"], acknowledged=acknowledged,
                            unacknowledged=unacknowledged)  # fmt: skip
    after = env.driver("metrics")
    moved = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
    fired = alerts_firing(moved)
    details = [env.driver("run", run=pk) for pk, _ in runs]
    if expect_alerts is BY_PATH:  # either recovery is right; the alert must match the one taken
        expect_alerts = REDRIVEN if any(d.get("redrives") for d in details) else ()
    invariants["alert_fires_as_expected"] = {
        "ok": fired == sorted(expect_alerts),
        "detail": {"fired": fired, "expected": sorted(expect_alerts)},
    }
    row = {
        "fault": fault,
        "point": point or "-",
        "responses": responses,
        "runs": [(pk, s) for pk, s in runs],
        "attempts": [d.get("attempts") for d in details],
        "redrives": [d.get("redrives") for d in details],
        "error_codes": [d.get("error_code") for d in details],
        "request_keys": [d.get("request_key") for d in details],
        "lost": sum(1 for pk, s in runs if s not in ("completed", "failed")) + (0 if runs else 1),
        "duplicated": max(0, len(runs) - slots),
        "seconds_to_terminal": round(elapsed, 1),
        "metrics_moved": moved,
        "alerts": fired,
        "invariants": {name: v["ok"] for name, v in invariants.items()},
    }
    RESULTS.append(row)
    print(json.dumps(row, default=str))  # noqa: T201 (the suite's table, in the test output)
    broken = {name: v for name, v in invariants.items() if not v["ok"]}
    assert not broken, f"{fault} at {point}: {json.dumps(broken, default=str)}\n{env.worker.tail()}"
    return row


def alerts_firing(moved: dict[str, float]) -> list[str]:
    """The alerts of alerts/jfintech.rules.yaml that fire on these counter increases (each series
    flat at 0, then at its increase; evaluated by promtool, namespace="chaos"): the alert names."""
    series = [
        {
            "series": key.replace("{", '{namespace="chaos",', 1).replace(",}", "}"),
            "values": f"0x5 {int(v)}x20",
        }
        for key, v in moved.items()
    ]
    names = []
    for candidate in _alert_names():
        test = {
            "rule_files": [str(ALERT_RULES)],
            "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": [{
                "expr": f'count(ALERTS{{alertname="{candidate}", alertstate="firing"}})', "eval_time": "10m",
                "exp_samples": [{"labels": "{}", "value": 1}]}]}],
        }  # fmt: skip
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"chaos-promtool-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(json.dumps(test))  # JSON is YAML
        try:
            result = subprocess.run(
                ["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60
            )
        finally:
            path.unlink()
        if result.returncode == 0:
            names.append(candidate)
    return sorted(names)


def _alert_names() -> list[str]:
    """The alerts that read a recon_ counter (the ones a run's fault can move)."""
    import yaml

    rules = yaml.safe_load(ALERT_RULES.read_text())
    return [
        r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r and "recon_run" in r["expr"]
    ]


# --- the faults -------------------------------------------------------------------------------


def sigkill_main(env: Env, hold: Hold):
    os.kill(env.worker.proc.pid, signal.SIGKILL)  # its pool children die with it (parent-death signal)
    env.worker.proc.wait(10)
    env.start_worker()


def sigkill_child(env: Env, hold: Hold):
    """The pool child whose backend is blocked: the main process survives and starts a new child;
    the task is rejected and requeued (task_reject_on_worker_lost)."""
    children = chaos.pid_children(env.worker.proc.pid)
    assert children, "no pool child"
    blocked_backends = set(hold.waiting())
    ports = {
        r[1]: r[0]
        for r in env.sql(
            "SELECT pid, client_port FROM pg_stat_activity WHERE pid = ANY(%s)", [list(blocked_backends)]
        )
    }
    victim = _owner_of_ports(children, ports) or children[0]
    os.kill(victim, signal.SIGKILL)


def _owner_of_ports(pids: list[int], ports: dict) -> int | None:
    """Which of ``pids`` holds a TCP connection from one of ``ports`` (via ss)."""
    out = subprocess.run(["ss", "-tnp"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        for port in ports:
            if f"127.0.0.1:{port} " in line:
                for pid in pids:
                    if f"pid={pid}," in line:
                        return pid
    return None


def sigterm_main(env: Env, hold: Hold):
    """Warm shutdown: the worker stops taking work and finishes what it runs (once released)."""
    os.kill(env.worker.proc.pid, signal.SIGTERM)
    hold.release()
    env.worker.proc.wait(60)
    env.start_worker()


def redis_restart(persistent: bool):
    def inject(env: Env, hold: Hold):
        env.redis.restart(persistent=persistent, down_for=1.0)

    return inject


def postgres_restart(env: Env, hold: Hold):
    hold.release()
    env.pg.restart(mode="immediate")  # a crash: every backend gone, recovery on start


def duplicate_compute(env: Env, hold: Hold):
    """The compute delivered a second time while the first runs (visibility timeout elapsed)."""
    run = env.driver("runs", definition=_definition_of(env, hold))[0][0]
    env.driver("send", run=run, what="compute")


def _definition_of(env: Env, hold: Hold) -> int:
    return env.sql("SELECT definition_id FROM reconciliation_run ORDER BY id DESC LIMIT 1")[0][0]


class Stall:
    """The worker's backend blocked at the phase is stopped (SIGSTOP), then the phase released: its
    statement never returns and no server-side timeout can end it (a stopped backend runs no timer;
    its kernel still acknowledges TCP, so keepalives see a live peer). ``resume_after``: continued
    (SIGCONT) that many seconds later, inside the fault; None: only once the run is terminal, so the
    run must end without the stalled connection, and what the backend does when it resumes (its
    transaction's client gone, or interrupted) must change nothing."""

    def __init__(self, resume_after: float | None = None):
        self.resume_after = resume_after
        self.pids: list[int] = []

    def inject(self, env: Env, hold: Hold):
        self.pids = hold.waiting()
        assert self.pids, "no backend blocked at the phase"
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        hold.release()
        if self.resume_after is not None:
            time.sleep(self.resume_after)
            self.resume(env)

    def resume(self, env: Env):
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

        def settled():  # the resumed backend went on: its statement ended, or the backend exited
            rows = env.sql(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s) AND state = 'active'", [self.pids]
            )
            return not rows

        wait_until(settled, timeout=60, interval=0.5, message=f"stalled backends {self.pids} never settled")


def nothing(env: Env, hold: Hold):
    """No fault: the trial's own conditions (a duplicate request, Redis down at enqueue) are the test."""


REDRIVEN = ("JfintechRunsRedriven",)
# A PostgreSQL crash is recovered either by the compute task's own retry of the connection error or,
# when its heartbeat went stale first on a loaded machine, by the re-drive: expect the path's alert.
BY_PATH = object()


@pytest.mark.parametrize("point", ["fetching", "persisting", "syncing-cases"])
def test_sigkill_of_the_worker_main_process(chaos_env, point):
    row = trial(chaos_env, "SIGKILL worker main", point, sigkill_main, expect_alerts=REDRIVEN)
    assert [s for _, s in row["runs"]] == ["completed"]


def test_sigkill_of_a_pool_child(chaos_env):
    row = trial(chaos_env, "SIGKILL pool child", "matching", sigkill_child)
    assert [s for _, s in row["runs"]] == ["completed"]


def test_sigterm_mid_task_is_a_warm_shutdown(chaos_env):
    row = trial(chaos_env, "SIGTERM worker (warm)", "persisting", sigterm_main)
    assert [s for _, s in row["runs"]] == ["completed"]


@pytest.mark.parametrize("persistent", [False, True], ids=["no-persistence", "aof"])
def test_redis_restarted_mid_chord(chaos_env, persistent):
    fault = f"Redis restart ({'AOF' if persistent else 'no persistence'})"
    row = trial(chaos_env, fault, "fetching", redis_restart(persistent), expect_alerts=REDRIVEN)
    assert [s for _, s in row["runs"]] == ["completed"]


def test_postgres_restarted_mid_run(chaos_env):
    row = trial(
        chaos_env, "PostgreSQL restart (crash)", "persisting", postgres_restart, expect_alerts=BY_PATH
    )
    assert [s for _, s in row["runs"]] == ["completed"]


def test_a_compute_delivered_twice(chaos_env):
    row = trial(chaos_env, "compute delivered twice", "persisting", duplicate_compute)
    assert [s for _, s in row["runs"]] == ["completed"]


def test_a_backend_stalled_past_the_time_limit_fails_the_run_loudly(chaos_env):
    """No statement_timeout could end it (the backend is stopped) and the heartbeat, on a connection
    of its own, keeps the run fresh (its worker is alive: no re-drive). The bound is the task's soft
    time limit (CELERY_TASK_SOFT_TIME_LIMIT; 20 s here, 54 min in production, beyond a run's default
    30 min deadline, where the reaper fails it first): it interrupts psycopg's wait, the compute's
    transaction is abandoned (Django closes the connection whose rollback failed) and the task fails
    the run, loudly (time_limit), before its deadline; the stalled backend, continued after,
    commits nothing."""
    stall = Stall()
    row = trial(chaos_env, "backend stalled past the time limit (SIGSTOP)", "persisting", stall.inject,
                after=stall.resume, deadline=120, expect_alerts=("JfintechRunFailed",))  # fmt: skip
    assert [s for _, s in row["runs"]] == ["failed"]
    assert row["error_codes"] == ["time_limit"]
    assert row["redrives"] == [0]
    assert row["seconds_to_terminal"] < 120


def test_a_backend_stalled_for_a_while_is_waited_for(chaos_env):
    """Stalled past the stale period (6 s) but within the time limit: the heartbeat's own
    connection keeps the run fresh, so the reaper does not take a slow live compute for a dead one;
    once continued, the run completes on its first attempt."""
    stall = Stall(resume_after=STALE + 4)
    row = trial(chaos_env, "backend stalled 10 s (SIGSTOP, SIGCONT)", "persisting", stall.inject)
    assert [s for _, s in row["runs"]] == ["completed"]
    assert row["redrives"] == [0]
    assert row["attempts"] == [1]


def test_a_lost_chord_callback(chaos_env):
    """The chord's parts run, the callback never comes (as a broker that lost it would leave the
    run): both sides fetched, nothing computes, the fetches' heartbeat stops; the reaper finds the
    run stale and re-sends the chord, whose parts find their RunPart and whose callback computes."""
    row = trial(chaos_env, "chord callback lost", None, nothing, lose_callback=True, expect_alerts=REDRIVEN)
    assert [s for _, s in row["runs"]] == ["completed"]
    assert row["redrives"] == [1]
    assert row["attempts"] == [1]
    assert row["metrics_moved"].get('recon_run_redrives_total{kind="two_way",status="fetching"}') == 1


# --- faults during an ingest -----------------------------------------------------------------------

INGEST_ROWS = 2000


def _trade_file(rows: int) -> str:
    today = datetime.now(UTC).date().isoformat()
    lines = ["trade_id,trade_date,account,isin,amount,ccy,version"]
    lines += [f"CH{i:06d},{today},ACC{i % 7},XS{i % 11:010d},{i}.25,EUR," for i in range(rows)]
    return "\n".join(lines) + "\n"


def kill_uploader(env: Env, uploader: Driver):
    """The process serving the upload (a web worker) killed while its COPY waits."""
    uploader.proc.kill()
    uploader.proc.wait(10)


def postgres_crash(env: Env, uploader: Driver):
    env.pg.restart(mode="immediate")


def ingest_trial(env: Env, fault: str, inject, *, idempotency_key: bool) -> dict:
    """A CSV uploaded through the API in a process of its own, held at its load (the record table
    locked: the COPY waits), the fault, then the client's retry with the same file (and the same
    Idempotency-Key when it sent one): one batch's records loaded, no partial batch, every batch closed."""
    seeded = env.driver("seed_source")
    content = _trade_file(INGEST_ROWS)
    idem = f"chaos-ingest-{uuid.uuid4().hex[:10]}" if idempotency_key else ""
    request = {"source": seeded["source"], "key": seeded["key"], "content": content, "idem": idem}
    uploader = Driver(env.env, env.base / "uploader.log")
    hold = Hold(env, "loading", table="reconciliation_record")
    started = time.monotonic()
    try:
        uploader.send("upload", **request)
        wait_until(hold.waiting, timeout=60, message="the upload never reached its load")
        live = env.driver("reap_batches")  # a batch being loaded is never taken for abandoned
        inject(env, uploader)
    finally:
        hold.release()
    first = None
    if uploader.proc.poll() is None:  # the request's own answer (the fault did not kill its process)
        with contextlib.suppress(AssertionError):
            first = uploader.receive("upload")["status"]
        uploader.close()
    retry = env.driver("upload", **request)
    abandoned = env.driver("reap_batches")  # beat's job: close what the dead process left open
    elapsed = time.monotonic() - started
    invariants = env.driver("check_ingest", source=seeded["source"], rows=INGEST_ROWS)
    invariants["a_live_load_is_not_abandoned"] = {"ok": live == [], "detail": live}
    batches = invariants["every_batch_closed"]["detail"]
    row = {
        "fault": fault, "point": "ingest: loading", "responses": [first, retry["status"]],
        "runs": [(pk, f"batch {status}" + (f" ({code})" if code else "")) for pk, status, code in batches],
        "attempts": "-", "redrives": "-", "lost": 0 if invariants["loaded_once"]["ok"] else 1,
        "duplicated": max(0, len(invariants["loaded_once"]["detail"]["loaded"]) - 1),
        "seconds_to_terminal": round(elapsed, 1), "alerts": [],
        "batches": invariants["every_batch_closed"]["detail"], "abandoned": abandoned,
        "invariants": {name: v["ok"] for name, v in invariants.items()},
    }  # fmt: skip
    RESULTS.append(row)
    print(json.dumps(row, default=str))  # noqa: T201 (the suite's table, in the test output)
    broken = {name: v for name, v in invariants.items() if not v["ok"]}
    assert not broken, f"{fault}: {json.dumps(broken, default=str)}"
    return row


@pytest.mark.parametrize("idempotency_key", [False, True], ids=["no-key", "idempotency-key"])
def test_the_uploading_process_killed_mid_load(chaos_env, idempotency_key):
    """Without an Idempotency-Key the batch row committed at receipt: its process gone, it stays
    open until beat's fail_abandoned_batches closes it (failed, abandoned). With one, the whole
    request is one transaction: nothing of it remains. The retry loads the file once."""
    fault = f"upload process killed ({'Idempotency-Key' if idempotency_key else 'no key'})"
    row = ingest_trial(chaos_env, fault, kill_uploader, idempotency_key=idempotency_key)
    assert row["responses"] == [None, 201]
    expected = [["loaded", ""]] if idempotency_key else [["failed", "abandoned"], ["loaded", ""]]
    assert [b[1:] for b in row["batches"]] == expected


@pytest.mark.parametrize("idempotency_key", [False, True], ids=["no-key", "idempotency-key"])
def test_postgres_restarted_mid_load(chaos_env, idempotency_key):
    """The load's connection is lost: the request answers 503 (retry later). Without a key the
    batch row committed at receipt; the process's own attempt to close it as failed
    (internal_error) needs the connection it lost, so it stays open until fail_abandoned_batches
    closes it (abandoned). With a key nothing of the request remains. The retry loads the file once."""
    fault = f"PostgreSQL restart mid-load ({'Idempotency-Key' if idempotency_key else 'no key'})"
    row = ingest_trial(chaos_env, fault, postgres_crash, idempotency_key=idempotency_key)
    assert row["responses"] == [503, 201]
    statuses = [b[1] for b in row["batches"]]
    assert statuses == (["loaded"] if idempotency_key else ["failed", "loaded"])
    assert all(code in ("", "internal_error", "abandoned") for _, _, code in row["batches"])


class Beat:
    """A real ``celery beat`` (the DatabaseScheduler) on the private servers, started and stopped."""

    def __init__(self, env: Env):
        self.env, self.process, self.starts = env, None, 0

    def start(self):
        self.starts += 1
        beat = processes.celery_beat(self.env.base)
        beat.env, beat.log_path = self.env.env, self.env.base / f"beat{self.starts}.log"
        self.process = beat.start()
        beat.wait_for_log("beat: Starting", timeout=90)

    def stop(self, sig=signal.SIGTERM):
        os.kill(self.process.proc.pid, sig)
        try:
            self.process.proc.wait(90)  # a warm stop writes the schedule first: slow on a loaded machine
        except subprocess.TimeoutExpired:
            tail = self.process.tail()
            raise AssertionError(f"beat did not exit within 90 s of {sig!r}:\n{tail}") from None
        finally:
            self.process.stop()


def _next_minute(after: float) -> float:
    return after - after % 60 + 60


def test_beat_stopped_across_a_slot_then_killed_before_writing_it(chaos_env):
    """A definition scheduled every minute. Beat is stopped across a slot: started again, it sends
    one tick, which starts the run of the missed slot (beat's catch-up: the latest missed slot, one
    run however many were missed). Then beat is killed before it wrote the tick's ``last_run_at``
    (it writes every three minutes; the state is set by rewinding the row, as a kill leaves it):
    started again, it sends the same slot again, which must start nothing new."""
    env = chaos_env
    env.ensure_worker()
    seeded = env.driver("seed", accounts=12)
    definition = seeded["definition"]
    before = env.driver("metrics")
    if _next_minute(time.time()) - time.time() < 25:  # room to start and stop beat before the slot
        time.sleep(_next_minute(time.time()) - time.time() + 1)
    periodic_task = env.driver("schedule", definition=definition, cron="* * * * *")["periodic_task"]
    beat = Beat(env)
    beat.start()
    beat.stop()  # warm: beat had sent nothing for the definition
    slot = _next_minute(time.time())
    assert env.driver("runs", definition=definition) == []
    time.sleep(slot - time.time() + 2)  # beat is down across the slot
    started = time.monotonic()
    beat.start()
    runs = wait_until(lambda: env.driver("runs", definition=definition), timeout=60,
                      message=f"beat sent no catch-up tick:\n{beat.process.tail()}")  # fmt: skip
    beat.stop(signal.SIGKILL)
    env.sql("UPDATE django_celery_beat_periodictask SET last_run_at = to_timestamp(%s) WHERE id = %s",
            [slot - 30, periodic_task])  # fmt: skip
    ticks = "reconciliation.start_scheduled_run["
    beat.start()

    def replayed():
        done = [
            line for line in env.worker.tail(400).splitlines() if ticks in line and "succeeded in" in line
        ]
        return len(done) >= 2

    wait_until(replayed, timeout=60, message=f"beat did not send the slot again:\n{beat.process.tail()}")
    replayed_at = time.time()
    beat.stop()
    env.sql("UPDATE django_celery_beat_periodictask SET enabled = false WHERE id = %s", [periodic_task])
    assert replayed_at < slot + 60, "the replay reached the next slot: the machine is too slow for it"
    acknowledged = {f"slot-{pk}": pk for pk, _ in env.driver("runs", definition=definition)}
    row = conclude(env, "beat stopped across a slot, killed before writing it", "scheduled slot", definition,
                   started=started, before=before, acknowledged=acknowledged, responses=[])  # fmt: skip
    slot_key = datetime.fromtimestamp(slot, UTC).isoformat()
    assert row["request_keys"] == [f"beat:{definition}:{slot_key}"], row["request_keys"]
    assert [s for _, s in row["runs"]] == ["completed"]
    assert runs


def test_the_same_request_sent_twice(chaos_env):
    row = trial(chaos_env, "API request sent twice", None, nothing, duplicate_start=True)
    assert row["responses"] == [202, 202]


def test_redis_down_when_a_request_enqueues(chaos_env):
    """The committed PENDING run is the outbox: with the broker down the request still answers 202
    with its run (the work exists and will be driven, never a 500 for work that will happen) and the
    reaper re-sends the chord once the run's heartbeat, its creation, goes stale; it completes once."""
    row = trial(
        chaos_env, "Redis down at enqueue", None, nothing, redis_down_at_start=True, expect_alerts=REDRIVEN
    )
    assert row["responses"] == [202]
    assert row["redrives"][0] >= 1
    assert [s for _, s in row["runs"]] == ["completed"]


def _write_table():
    if not RESULTS:
        return
    out = Path(os.environ.get("CHAOS_RESULTS", ROOT / ".local" / "chaos-results.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "| fault | point | runs | lost | duplicated | s to terminal | attempts | redrives | alerts"
        " | invariants |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in RESULTS:
        held = all(r["invariants"].values())
        failed = [k for k, v in r["invariants"].items() if not v]
        lines.append(
            f"| {r['fault']} | {r['point']} | {', '.join(s for _, s in r['runs'])} | {r['lost']}"
            f" | {r['duplicated']} | {r['seconds_to_terminal']} | {r['attempts']} | {r['redrives']}"
            f" | {', '.join(r['alerts']) or '-'}"
            f" | {'all hold' if held else 'BROKEN: ' + ', '.join(failed)} |"
        )
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(["", "fault suite results:", *lines]))  # noqa: T201 (the suite's table, in the test output)


# --- a seeded random sequence of requests and faults (a nemesis) on top of the fixed trials -------


class Nemesis(RuleBasedStateMachine):
    """Runs started through the API while a nemesis kills the worker (main or a child), restarts
    Redis or redelivers a compute, at whatever moment the sequence lands on; beat's reaper runs when
    the sequence says. At the end every run must be terminal and every invariant hold."""

    env: Env = None  # set by the test below (hypothesis builds the machine without fixtures)

    @initialize()
    def setup(self):
        self.env.ensure_worker()
        self.trials: list[dict] = []  # {definition, acknowledged, unacknowledged}
        self.start_run()  # every sequence has at least one run under its faults

    @rule()
    def start_run(self):
        seeded = self.env.driver("seed", accounts=6)
        idem = f"nemesis-{uuid.uuid4().hex[:10]}"
        answer = self.env.driver("start", definition=seeded["definition"], key=seeded["key"], idem=idem)
        acknowledged = {idem: answer["body"]["id"]} if answer["status"] == 202 else {}
        self.trials.append({"definition": seeded["definition"], "acknowledged": acknowledged,
                            "unacknowledged": int(answer["status"] != 202)})  # fmt: skip

    @rule(pause=st.sampled_from([0.0, 0.3, 1.0]))
    def wait(self, pause):
        time.sleep(pause)

    @rule()
    def kill_worker_main(self):
        sigkill_main(self.env, None)

    @rule()
    def kill_pool_child(self):
        self.env.ensure_worker()
        children = chaos.pid_children(self.env.worker.proc.pid)
        if children:
            os.kill(children[0], signal.SIGKILL)

    @rule(persistent=st.booleans())
    def restart_redis(self, persistent):
        self.env.redis.restart(persistent=persistent, down_for=0.5)

    @rule()
    def redeliver_compute(self):
        if self.trials and self.trials[-1]["acknowledged"]:
            run = next(iter(self.trials[-1]["acknowledged"].values()))
            self.env.driver("send", run=run, what="compute")

    @rule()
    def reap(self):
        self.env.driver("reap")

    @invariant()
    def the_worker_is_there(self):
        self.env.ensure_worker()  # a killed worker is restarted, as its supervisor would

    def teardown(self):
        definitions = [t["definition"] for t in self.trials]

        def all_terminal():
            self.env.driver("reap")
            states = [s for d in definitions for _, s in self.env.driver("runs", definition=d)]
            return all(s in ("completed", "failed") for s in states)

        wait_until(all_terminal, timeout=180, interval=1.0, message="a run never ended")
        for t in self.trials:
            invariants = self.env.driver("check", **t)
            broken = {name: v for name, v in invariants.items() if not v["ok"]}
            assert not broken, json.dumps(broken, default=str)
        RESULTS.append({"fault": "nemesis (random sequence)", "point": "random", "runs": [
            (0, s) for d in definitions for _, s in self.env.driver("runs", definition=d)],
            "lost": 0, "duplicated": 0, "seconds_to_terminal": "-", "attempts": "-", "redrives": "-",
            "alerts": [], "invariants": {"all": True}})  # fmt: skip


def test_a_random_sequence_of_requests_and_faults(chaos_env):
    from hypothesis.stateful import run_state_machine_as_test

    Nemesis.env = chaos_env
    run_state_machine_as_test(
        Nemesis,
        settings=settings(
            max_examples=2, stateful_step_count=6, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )  # fmt: skip
