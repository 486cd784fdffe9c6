"""Gunicorn configuration. Tracing and metrics are set up per worker, after the fork."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
accesslog = None  # the structlog request middleware logs each request as JSON
preload_app = False
# No gunicornc control socket: Kubernetes manages the workers, and its default path is under $HOME,
# which the image's user has none of (every start logged "Control server error", found by `make image`).
control_socket_disable = True
# The pool is per gunicorn worker process; safe here, unlike in Celery workers (celery#10554).
raw_env = [f"DB_POOL={os.environ.get('DB_POOL', 'true')}"]


def on_starting(server):
    # A restarted container keeps its emptyDir: samples of the previous run's pids would linger.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))


def post_fork(server, worker):
    from jfintech.observability import metrics, tracing

    tracing.setup_after_fork()
    metrics.start_db_pool_sampler()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
