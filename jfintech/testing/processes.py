"""Real processes for tests: Celery workers and gunicorn, started as subprocesses.

Eager mode would hide the broker, the chord and the producer spans, so tests use real workers
started once per session on the session's private Redis key prefix (CELERY_KEY_PREFIX).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url_for_current_connection() -> str:
    """The URL of the database this test process uses (the test database, once created)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ManagedProcess:
    name: str
    args: list[str]
    env: dict
    log_path: Path
    proc: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        return self

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            if needle in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()


def base_env(workdir: Path, **overrides) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=database_url_for_current_connection(),
        OTEL_TRACES_EXPORTER="file",
        OTEL_EXPORTER_FILE_DIR=str(workdir / "spans"),
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def metrics_env(workdir: Path, name: str, port_variable: str | None = "WORKER_METRICS_PORT") -> dict:
    """A private multiprocess directory (so no other process's samples leak in) and a free port
    in ``port_variable`` (gunicorn serves /metrics on its own port: pass None)."""
    directory = Path(workdir) / f"prometheus-{name}"
    directory.mkdir(parents=True, exist_ok=True)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    if port_variable:
        env[port_variable] = str(free_port())
    return env


def celery_worker(name: str, queues: str, workdir: Path, *, pool: str = "prefork",
                  concurrency: int = 2, **env) -> ManagedProcess:  # fmt: skip
    args = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-n",
        f"{name}-{os.getpid()}@%h", "--pool", pool, "--concurrency", str(concurrency),
        "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip
    process = ManagedProcess(name, args, base_env(workdir, **env), workdir / f"{name}.log")
    if env.get("WORKER_METRICS_PORT"):
        process.extra["metrics_url"] = f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}/metrics"
    return process


def celery_beat(workdir: Path, **env) -> ManagedProcess:
    """Beat with the DatabaseScheduler; with BEAT_METRICS_PORT it serves the platform metrics."""
    args = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
            "--pidfile", str(Path(workdir) / f"beat-{free_port()}.pid")]  # fmt: skip
    process = ManagedProcess("beat", args, base_env(workdir, **env), Path(workdir) / "beat.log")
    if env.get("BEAT_METRICS_PORT"):
        process.extra["metrics_url"] = f"http://127.0.0.1:{env['BEAT_METRICS_PORT']}/metrics"
    return process


def gunicorn_server(workdir: Path, *, workers: int = 2, **env) -> ManagedProcess:
    port = free_port()
    args = [
        sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "config/gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
    ]  # fmt: skip
    process = ManagedProcess("gunicorn", args, base_env(workdir, **env), workdir / "gunicorn.log")
    process.extra["url"] = f"http://127.0.0.1:{port}"
    return process


def read_spans(directory: Path) -> list[dict]:
    spans = []
    for path in sorted(Path(directory).glob("spans-*.jsonl")):
        spans.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return spans


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(message or f"condition not met within {timeout}s")
