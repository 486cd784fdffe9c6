"""A prefork worker started with the chart's own args and env, stopped as the kubelet stops it
(SIGTERM): a task that ends within the drain time finishes; one that does not is handed back to
its queue. A stand-alone Celery app with the project's delivery settings (acks_late,
reject_on_worker_lost, prefetch 1) and a private key prefix on the test Redis; its task waits
on a Redis list, so the test, not a clock, decides when it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery
from test_chart import env_var, pod_spec, render, workers

APP = """
import os, redis
from celery import Celery
url = os.environ["DRAIN_REDIS_URL"]
prefix = os.environ["DRAIN_PREFIX"]
app = Celery("drainapp", broker=url, backend=url)
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                broker_transport_options={"global_keyprefix": prefix, "visibility_timeout": 3600},
                result_backend_transport_options={"global_keyprefix": prefix})

@app.task(name="drain.wait_for_release")
def wait_for_release():
    client = redis.Redis.from_url(url)
    client.rpush(prefix + "started", 1)
    if client.blpop(prefix + "release", timeout=120) is None:
        raise RuntimeError("never released")
    return "finished"
"""


def _redis_url() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    from django.conf import settings  # under pytest-django the test settings start an embedded one

    return settings.REDIS_URL


@pytest.fixture
def drained_worker(tmp_path: Path):
    """Start the chart's `default` worker (drain 5 s) on the stand-alone app; yields helpers."""
    docs = render({"workerDefaults": {"drainSeconds": 5}})
    (container,) = pod_spec(workers(docs)["default"])["containers"]
    args = list(container["args"])
    assert args[:3] == ["celery", "-A", "config"]
    args[2] = "drainapp"
    remap = env_var(container, "REMAP_SIGTERM")["value"]
    grace = pod_spec(workers(docs)["default"])["terminationGracePeriodSeconds"]

    (tmp_path / "drainapp.py").write_text(APP)
    prefix = f"drain-{uuid.uuid4().hex[:8]}:"
    url = _redis_url()
    env = {**os.environ, "REMAP_SIGTERM": remap, "DRAIN_REDIS_URL": url, "DRAIN_PREFIX": prefix,
           "PYTHONPATH": str(tmp_path)}  # fmt: skip
    env.pop("DJANGO_SETTINGS_MODULE", None)
    client = redis.Redis.from_url(url)
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    # The producer: sends by task name, with the same broker key prefix.
    producer = Celery("producer", broker=url, backend=url, set_as_current=False)
    options = {"global_keyprefix": prefix}
    producer.conf.update(broker_transport_options=options, result_backend_transport_options=options)

    def send():
        return producer.send_task("drain.wait_for_release", queue="default")

    def stop_like_the_kubelet() -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=grace)  # before the kubelet's SIGKILL

    try:
        yield send, client, prefix, stop_like_the_kubelet, tmp_path / "worker.log"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)


@pytest.mark.slow
def test_a_task_that_ends_within_the_drain_finishes(drained_worker) -> None:
    send, client, prefix, stop, log = drained_worker
    result = send()
    assert client.blpop(prefix + "started", timeout=60), log.read_text()
    client.rpush(prefix + "release", 1)  # the task can end now, during the drain
    assert stop() == 0
    assert result.get(timeout=10) == "finished"
    assert client.llen(prefix + "default") == 0


@pytest.mark.slow
def test_a_task_still_running_after_the_drain_is_handed_back(drained_worker) -> None:
    send, client, prefix, stop, log = drained_worker
    send()
    assert client.blpop(prefix + "started", timeout=60), log.read_text()
    assert stop() == 0  # never released: cancelled after the drain, not killed
    # The unacknowledged message is back in its queue for another worker, none left unacked.
    assert client.llen(prefix + "default") == 1, log.read_text()
    assert client.hlen(prefix + "unacked") == 0
