"""Run the whole system as child processes: gunicorn, one Celery worker per queue, and beat.

``make demo`` ends with this. It prints the URLs, proves the pipeline end to end (a chord through
every queue), prints ``READY <url>`` and serves until Ctrl-C or SIGTERM, then stops its children
(and the embedded PostgreSQL/Redis if this checkout started them).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jfintech import devservices
from jfintech.health import services as health

# queue -> (pool, concurrency). fetch is I/O-bound: threads, so parallel fetches overlap on 2 cores.
WORKERS = {
    "default": ("prefork", 1),
    "ingest": ("prefork", 1),
    "reconciliation": ("prefork", 2),
    "fetch": ("threads", 4),
}
FIRST_WORKER_METRICS_PORT = 9808
BEAT_METRICS_PORT = 9807  # the platform metrics (queue depth, runs per state, open cases)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Command(BaseCommand):
    help = "Serve web, workers and beat as child processes until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8000)))

    def handle(self, *args, port, **options):
        if not _port_free(port):
            port = devservices._free_port()
        base_url = f"http://127.0.0.1:{port}/"
        prom_dir = Path(settings.BASE_DIR) / ".local" / "prometheus"
        shutil.rmtree(prom_dir, ignore_errors=True)
        prom_dir.mkdir(parents=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        py = sys.executable
        commands = {
            "web": [py, "-m", "gunicorn", "config.wsgi", "-c", "config/gunicorn.conf.py",
                    "--bind", f"127.0.0.1:{port}"],
            # Beat's scheduler is django-celery-beat's DatabaseScheduler (CELERY_BEAT_SCHEDULER).
            "beat": [py, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
        }  # fmt: skip
        worker_ports = {}
        for i, (queue, (pool, concurrency)) in enumerate(WORKERS.items()):
            worker_ports[queue] = FIRST_WORKER_METRICS_PORT + i
            commands[f"worker-{queue}"] = [
                py, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-n", f"{queue}@%h",
                "--pool", pool, "--concurrency", str(concurrency), "--without-gossip",
                "--without-mingle", "--loglevel", "INFO",
            ]  # fmt: skip
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            if stopping:
                return
            stopping = True
            self.stdout.write("stopping: " + ", ".join(children))
            for proc in children.values():
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            for proc in children.values():
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            embedded = os.environ.get("JFINTECH_EMBEDDED_SERVICES")
            if embedded:
                self.stdout.write("stopped embedded services: " + ", ".join(devservices.stop(Path(embedded))))
            self.stdout.write("stopped")

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for name, argv in commands.items():
                # One multiprocess directory per process group, as one per pod in Kubernetes:
                # a shared one would make web's /metrics and every worker's port serve them all.
                (prom_dir / name).mkdir()
                child_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir / name)}
                if name == "beat":
                    child_env["BEAT_METRICS_PORT"] = str(BEAT_METRICS_PORT)
                if name.startswith("worker-"):
                    child_env["WORKER_METRICS_PORT"] = str(worker_ports[name.removeprefix("worker-")])
                # Own session: Ctrl-C reaches us, and we stop the children in order.
                children[name] = subprocess.Popen(
                    argv, cwd=settings.BASE_DIR, env=child_env, start_new_session=True
                )
            self._wait_ready(base_url, children)
            check = health.pipeline_check_start(timeout_s=60)
            self._wait_pipeline(check)
            self.stdout.write(f"admin:    {base_url}admin/")
            self.stdout.write(f"API:      {base_url}api/v1/   (docs: {base_url}api/docs/)")
            workers = ", ".join(f"{q}=:{p}" for q, p in worker_ports.items())
            self.stdout.write(f"metrics:  {base_url}metrics  beat: :{BEAT_METRICS_PORT}  workers: {workers}")
            self.stdout.write(f"READY {base_url}", ending="\n")
            self.stdout.flush()
            while not stopping:
                for name, proc in children.items():
                    if proc.poll() is not None and not stopping:
                        stop()
                        raise CommandError(f"{name} exited with {proc.returncode}")
                time.sleep(0.5)
        finally:
            stop()

    def _wait_ready(self, base_url, children, timeout=120):
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            for name, proc in children.items():
                if proc.poll() is not None:
                    raise CommandError(f"{name} exited with {proc.returncode} while starting")
            try:
                with urllib.request.urlopen(base_url + "readyz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError as exc:  # not listening yet, or /readyz not yet 200: poll again
                last_error = exc
            time.sleep(0.5)
        raise CommandError(f"web did not become ready within {timeout}s (last: {last_error!r})")

    def _wait_pipeline(self, check, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check.refresh_from_db()
            if check.status == "completed":
                self.stdout.write(f"pipeline check {check.pk}: every queue answered")
                return
            if check.status == "failed":
                raise CommandError(f"pipeline check failed: {check.error}")
            time.sleep(0.5)
        raise CommandError("workers did not answer the pipeline check in time")
