"""Run the whole system as child processes: gunicorn, one Celery worker per queue, and beat.

``make demo`` ends with this. It prints the URLs, proves the pipeline end to end (a chord through
every queue), prints ``READY <url>`` and serves until Ctrl-C or SIGTERM, then stops its children
(and the embedded PostgreSQL/Redis if this checkout started them). A child that dies meanwhile is
restarted with backoff and said loudly; only a crash loop stops everything (jfintech.supervisor).
"""

import os
import shutil
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jfintech import demo, devservices
from jfintech.health import services as health
from jfintech.supervisor import CrashLoop, Supervisor

# queue -> (pool, concurrency). fetch is I/O-bound: threads, so parallel fetches overlap on 2 cores.
WORKERS = {
    "default": ("prefork", 1),
    "ingest": ("prefork", 1),
    "reconciliation": ("prefork", 2),
    "fetch": ("threads", 4),
}
FIRST_WORKER_METRICS_PORT = 9808
BEAT_METRICS_PORT = 9807  # the platform metrics (queue depth, runs per state, open cases)
# A crash loop: one child exiting more than this many times within the window stops the demo.
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Command(BaseCommand):
    help = "Serve web, workers and beat as child processes until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8000)))
        parser.add_argument("--max-restarts", type=int, default=MAX_RESTARTS)
        parser.add_argument("--restart-window", type=float, default=RESTART_WINDOW_S)

    def handle(self, *args, port, max_restarts, restart_window, **options):
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
        beat_port = BEAT_METRICS_PORT if _port_free(BEAT_METRICS_PORT) else devservices._free_port()
        for i, (queue, (pool, concurrency)) in enumerate(WORKERS.items()):
            wanted = FIRST_WORKER_METRICS_PORT + i
            worker_ports[queue] = wanted if _port_free(wanted) else devservices._free_port()
            commands[f"worker-{queue}"] = [
                py, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-n", f"{queue}@%h",
                "--pool", pool, "--concurrency", str(concurrency), "--without-gossip",
                "--without-mingle", "--loglevel", "INFO",
            ]  # fmt: skip
        supervisor = Supervisor(
            cwd=settings.BASE_DIR,
            write=lambda line: (self.stdout.write(line), self.stdout.flush()),
            max_restarts=max_restarts,
            window_s=restart_window,
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            if stopping:
                return
            stopping = True
            self.stdout.write("stopping: " + ", ".join(supervisor.children))
            supervisor.stop()
            embedded = devservices.claimed_here()
            if embedded:
                self.stdout.write("stopped embedded services: " + ", ".join(devservices.stop(embedded)))
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
                    child_env["BEAT_METRICS_PORT"] = str(beat_port)
                if name.startswith("worker-"):
                    child_env["WORKER_METRICS_PORT"] = str(worker_ports[name.removeprefix("worker-")])
                supervisor.add(name, argv, child_env)
            supervisor.start_all()
            children = {name: child.proc for name, child in supervisor.children.items()}
            self._wait_ready(base_url, children)
            check = health.pipeline_check_start(timeout_s=60)
            self._wait_pipeline(check)
            self.stdout.write(f"admin:    {base_url}admin/")
            self.stdout.write(f"API:      {base_url}api/v1/   (docs: {base_url}api/docs/)")
            workers = ", ".join(f"{q}=:{p}" for q, p in worker_ports.items())
            self.stdout.write(f"metrics:  {base_url}metrics  beat: :{beat_port}  workers: {workers}")
            self.stdout.write(f"READY {base_url}", ending="\n")
            # Again after READY: the seed printed them ~300 lines up, behind the workers' banners.
            self.stdout.write(demo.login_block())
            self.stdout.flush()
            while not stopping:
                try:
                    supervisor.poll()
                except CrashLoop as exc:
                    stop()
                    raise CommandError(str(exc)) from None
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
