"""Session-wide test fixtures: real Celery workers and the test process's own tracing."""

import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from jfintech.testing import processes

# Property tests: HYPOTHESIS_PROFILE=ci (set by .ci/run) is derandomized and has no deadline (a
# shared 2-core CI machine makes timings meaningless); without it, hypothesis' defaults apply.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("HYPOTHESIS_PROFILE"):
    hypothesis_settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


@pytest.fixture(scope="session")
def observability_dir(tmp_path_factory) -> Path:
    """Where every process of this session writes its spans (one JSON-lines file per pid)."""
    directory = tmp_path_factory.mktemp("observability")
    os.environ["OTEL_TRACES_EXPORTER"] = "file"
    os.environ["OTEL_EXPORTER_FILE_DIR"] = str(directory / "spans")
    from jfintech.observability import tracing

    tracing.setup_after_fork(role="test")
    return directory


@pytest.fixture(scope="session")
def celery_workers(django_db_setup, django_db_blocker, observability_dir):
    """Two real workers, as in production: prefork for CPU work, threads for I/O-bound fetches."""
    with django_db_blocker.unblock():
        workers = [
            # Each with its own metrics directory and port (tests scrape them: metrics_url).
            processes.celery_worker(
                "main",
                "default,ingest,reconciliation",
                observability_dir,
                concurrency=2,
                **processes.metrics_env(observability_dir, "main"),
            ),
            processes.celery_worker(
                "fetch",
                "fetch",
                observability_dir,
                pool="threads",
                concurrency=4,
                **processes.metrics_env(observability_dir, "fetch"),
            ),
        ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.wait_for_log(" ready.", timeout=90)
        yield {w.name: w for w in workers}
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture
def staff_client(client, django_user_model):
    # A superuser: the platform endpoints (pipeline checks) are superusers' only.
    user = django_user_model.objects.create_superuser("ops", password="pw")  # noqa: S106
    client.force_login(user)
    client.user = user
    return client
