"""Load benchmark: the API under a real gunicorn and a real Celery worker, driven by locust.

    python -m bench.load [--rates 4,8,16,32,64] [--step-seconds 15] [--phase-seconds 30]
                         [--small-runs 50] [--small-records 1000]

Starts its own gunicorn (2 processes x 4 threads, the pool on, as ``manage.py serve`` and the chart
run it) and one Celery worker on every queue (prefork, 2 processes), on DATABASE_URL/REDIS_URL
(a throwaway database next to DATABASE_URL's, created and dropped here; a broker key prefix of
its own), seeds a tenant, one API key per simulated client, small two-way definitions with data
and a JSON source, and stops everything at the end. Loopback only.

Traffic (locust, headless, in a subprocess: gevent stays out of the Django process; each client
at most 2 requests/s, so the offered rate is the target while answers stay under 500 ms):
the case list 35%, a run read 35%, a JSON ingest push of 10 records 15%, a run start 15% (one of
``--definitions`` (20), round robin: a definition whose run is still in flight answers 409).

1. **Step search**: each rate of ``--rates`` for ``--step-seconds``; the sustained rate is the
   highest whose p99 <= 250 ms with no 5xx and at least 90% of the target sent.
2. **Overload**: 2x and 4x that rate (``--factors``) for ``--phase-seconds`` each.
3. **Small-run latency**: ``--small-runs`` runs of a definition with ``--small-records`` records
   a side (90% matching), one after the other: API POST -> GET shows completed, p50/p95.

Per phase it prints the offered and accepted (2xx) rates, p50/p95/p99 over every answer, and the
count by status; after each phase every run it accepted must complete (the work accepted
completes). Fails (exit 1, ``!!``) on any 500, any request without an answer within
``--hang-seconds`` (a hung request), or an accepted run that did not complete. Each phase is
bounded in time and in requests (rate x seconds x 1.5). The admission limit is lowered to
``--queue-limit`` messages so overload reaches it (API_QUEUE_DEPTH_LIMIT, default 1000 in
production). The load generator shares the machine's cores with what it measures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

P99_TARGET_MS = 250
PER_CLIENT_RATE = 2.0  # requests/s a simulated client sends at most
RECORDS_PER_DEFINITION = 20  # a side
PUSH_RECORDS = 10
MIX = {"case list": 7, "run read": 7, "ingest push": 3, "run start": 3}
BASE = "/api/v1"


# --- the locust side (its own process: locust monkey-patches the standard library with gevent) ---


def locust_phase(spec: dict) -> dict:
    """One phase at ``spec["rate"]`` requests/s for ``spec["seconds"]``: every answer's endpoint,
    status and latency, the run ids accepted, and the requests still without an answer at the end."""
    import gevent
    from locust import FastHttpUser, constant_throughput, task
    from locust.env import Environment
    from locust.exception import StopUser

    users = max(1, math.ceil(spec["rate"] / PER_CLIENT_RATE))
    keys = itertools.cycle(spec["keys"])
    definitions = itertools.cycle(spec["definitions"])
    run_ids = list(spec["run_ids"])
    samples, accepted_runs, in_flight, sent, refusals = [], [], set(), [0], Counter()
    pushes = itertools.count()

    class Client(FastHttpUser):
        host = spec["url"]
        wait_time = constant_throughput(spec["rate"] / users)
        network_timeout = connection_timeout = spec["hang_seconds"]

        def on_start(self):
            self.headers = {"Authorization": f"Api-Key {next(keys)}"}

        def call(self, name: str, method: str, path: str, body=None) -> dict | None:
            if sent[0] >= spec["max_requests"]:
                raise StopUser()
            sent[0] += 1
            token = object()
            in_flight.add(token)
            started = time.perf_counter()
            try:
                with self.client.request(method, path, name=name, json=body, headers=self.headers,
                                         catch_response=True) as response:  # fmt: skip
                    response.success()  # statuses are counted here, not judged by locust
                    status = response.status_code or 0
                    data = response.json() if status in (200, 202) and name == "run start" else None
                    if status >= 400:  # which refusal: the error shape's code
                        refusals[f"{status} {_error_code(response)}"] += 1
            finally:
                in_flight.discard(token)
            samples.append((name, status, (time.perf_counter() - started) * 1000))
            return data

        @task(MIX["case list"])
        def case_list(self):
            self.call("case list", "GET", f"{BASE}/exceptions/cases/")

        @task(MIX["run read"])
        def run_read(self):
            run_id = random.choice(run_ids)
            self.call("run read", "GET", f"{BASE}/reconciliation/runs/{run_id}/")

        @task(MIX["ingest push"])
        def ingest_push(self):
            n = next(pushes)
            records = [
                {"external_id": f"L{spec['phase']}-{n}-{i}", "business_date": spec["as_of"], "amount": "1.00",
                 "currency": "EUR"}
                for i in range(PUSH_RECORDS)
            ]  # fmt: skip
            self.call("ingest push", "POST", f"{BASE}/ingestion/sources/{spec['push_source']}/records/",
                      {"records": records})  # fmt: skip

        @task(MIX["run start"])
        def run_start(self):
            body = {"definition": next(definitions), "as_of": spec["as_of"]}
            data = self.call("run start", "POST", f"{BASE}/reconciliation/runs/", body)
            if data and "id" in data:
                accepted_runs.append(data["id"])
                run_ids.append(data["id"])

    env = Environment(user_classes=[Client], stop_timeout=spec["hang_seconds"] + 5)
    runner = env.create_local_runner()
    started = time.monotonic()
    runner.start(users, spawn_rate=users)
    gevent.sleep(spec["seconds"])
    runner.quit()  # lets each request in flight finish (stop_timeout), then stops the clients
    return {
        "seconds": time.monotonic() - started,
        "users": users,
        "samples": samples,
        "accepted_runs": accepted_runs,
        "unanswered": len(in_flight),
        "refusals": dict(refusals),
    }


def _error_code(response) -> str:
    try:
        return response.json()["error"]["code"]
    except Exception:  # not the API's error shape (a proxy's page, a truncated body)
        return "?"


# --- the orchestrating side (Django) -------------------------------------------------------------


def summarise(target: float, raw: dict) -> dict:
    samples = raw["samples"]
    latencies = sorted(ms for _, _, ms in samples)
    by_status = Counter(str(status) for _, status, _ in samples)
    hung = raw["unanswered"] + by_status.pop("0", 0)  # no answer within --hang-seconds

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else None

    seconds = raw["seconds"]
    return {
        "target_rps": target,
        "offered_rps": len(samples) / seconds,
        "accepted_rps": sum(1 for _, s, _ in samples if 200 <= s < 300) / seconds,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "requests": len(samples),
        "by_status": dict(sorted(by_status.items())),
        "by_endpoint": {
            name: dict(sorted(Counter(str(s) for n, s, _ in samples if n == name).items())) for name in MIX
        },
        "refusals": dict(sorted(raw["refusals"].items())),
        "server_errors": sum(n for s, n in by_status.items() if s.startswith("5") and s not in ("503",)),
        "hung": hung,
        "accepted_runs": raw["accepted_runs"],
        "users": raw["users"],
    }


def run_phase(name: str, rate: float, seconds: float, base: dict, workdir: Path) -> dict:
    spec = {
        **base,
        "phase": f"{name}-{uuid.uuid4().hex[:6]}",
        "rate": rate,
        "seconds": seconds,
        "max_requests": int(rate * seconds * 1.5) + 10,
        "keys": base["keys"][: max(1, math.ceil(rate / PER_CLIENT_RATE))],
    }
    spec_path, out_path = workdir / "phase.json", workdir / "phase-out.json"
    spec_path.write_text(json.dumps(spec))
    subprocess.run(
        [sys.executable, "-m", "bench.load", "--locust", str(spec_path), str(out_path)],
        cwd=ROOT, check=True, timeout=seconds + 2 * base["hang_seconds"] + 60,
    )  # fmt: skip
    return summarise(rate, json.loads(out_path.read_text()))


def drain(run_ids: list[int], timeout: float) -> dict:
    """Wait until every run accepted is terminal (bounded): the work accepted completes."""
    from reconciliation.runs.models import Run

    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(Run.objects.filter(pk__in=run_ids).values_list("status", flat=True))
        done = statuses.get("completed", 0) + statuses.get("failed", 0)
        if done == len(run_ids) or time.monotonic() > deadline:
            return dict(statuses)
        time.sleep(0.5)


def report(name: str, r: dict) -> None:
    statuses = " ".join(f"{s}:{n}" for s, n in r["by_status"].items())
    if r["refusals"]:
        statuses += " (" + ", ".join(f"{s}: {n}" for s, n in r["refusals"].items()) + ")"
    runs = r.get("runs") or {}
    print(
        f"{name:<12} {r['target_rps']:>6.1f} {r['offered_rps']:>8.1f} {r['accepted_rps']:>9.1f} "
        f"{r['p50_ms'] or 0:>7.0f} {r['p95_ms'] or 0:>7.0f} {r['p99_ms'] or 0:>7.0f} {r['hung']:>5}  "
        f"{statuses}  runs accepted {len(r['accepted_runs'])}: {runs}",
        flush=True,
    )


def seed(clients: int, definitions: int, small_records: int) -> dict:
    from jfintech.audit import Actor
    from jfintech.tenancy import services as tenancy
    from jfintech.tenancy.models import Role
    from jfintech.tests.factories import TenantFactory
    from reconciliation.runs.tests.factories import AS_OF, SourceFactory, definition, records

    tenant = TenantFactory(slug=f"bench-load-{time.time_ns()}")
    actor = Actor.for_system("bench")
    keys = [
        tenancy.api_key_create(
            tenant=tenant, actor=actor, name=f"client-{i}", role=Role.INTEGRATION
        ).plaintext
        for i in range(clients)
    ]
    rules = {"passes": [{"name": "exact_ref", "type": "exact", "keys": ["reference"]}]}
    names = []
    for d in range(definitions):
        defn = definition(tenant, name=f"load-{d}", rules=rules)
        n = RECORDS_PER_DEFINITION
        records(defn.sources.get(side="left").source,
                *({"reference": f"R{i}", "amount": f"{i}.00"} for i in range(n)))  # fmt: skip
        records(defn.sources.get(side="right").source,
                *({"reference": f"R{i}", "amount": f"{i}.00"} for i in range(n - 2)))  # fmt: skip
        names.append(defn.name)
    small = definition(tenant, name="small-run", rules=rules)
    matched = int(small_records * 0.9)
    records(small.sources.get(side="left").source,
            *({"reference": f"S{i}", "amount": f"{i}.00"} for i in range(small_records)))  # fmt: skip
    records(small.sources.get(side="right").source,
            *({"reference": f"S{i}", "amount": f"{i}.00"} for i in range(matched)),
            *({"reference": f"X{i}", "amount": "1.00"} for i in range(small_records - matched)))  # fmt: skip
    push = SourceFactory(tenant=tenant, name="pushed", kind="ledger", format="json")
    return {"keys": keys, "definitions": names, "push_source": push.pk, "as_of": AS_OF.isoformat()}


def start_runs(url: str, key: str, definitions: list[str], as_of: str) -> list[int]:
    import requests

    ids = []
    for name in definitions:
        for _ in range(120):  # a client that honours 503 queue_full: back off, retry
            r = requests.post(f"{url}{BASE}/reconciliation/runs/", json={"definition": name, "as_of": as_of},
                              headers={"Authorization": f"Api-Key {key}"}, timeout=30)  # fmt: skip
            if r.status_code != 503:
                break
            time.sleep(1)
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


def small_runs(url: str, key: str, as_of: str, count: int) -> dict:
    """API POST -> the run's GET says completed, one run at a time (after one warm-up run)."""
    import requests

    http = requests.Session()
    http.headers["Authorization"] = f"Api-Key {key}"
    times, failed = [], 0
    for i in range(count + 1):
        started = time.perf_counter()
        r = http.post(f"{url}{BASE}/reconciliation/runs/", json={"definition": "small-run", "as_of": as_of},
                      timeout=30)  # fmt: skip
        r.raise_for_status()
        run_url = f"{url}{BASE}/reconciliation/runs/{r.json()['id']}/"
        deadline = started + 120
        while (status := http.get(run_url, timeout=30).json()["status"]) not in ("completed", "failed"):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"small run {run_url} not terminal after 120 s")
            time.sleep(0.02)
        if i:  # the first opens the cases the others carry forward
            times.append(time.perf_counter() - started)
            failed += status != "completed"
    times.sort()
    return {
        "runs": count,
        "failed": failed,
        "p50_s": statistics.median(times),
        "p95_s": times[min(len(times) - 1, int(0.95 * len(times)))],
        "max_s": times[-1],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="4,8,16,32,64", help="step search: requests/s, ascending")
    parser.add_argument("--step-seconds", type=float, default=15)
    parser.add_argument("--phase-seconds", type=float, default=30, help="each overload phase")
    parser.add_argument("--factors", default="2,4", help="overload phases: multiples of the sustained rate")
    parser.add_argument("--hang-seconds", type=float, default=30, help="no answer by then: a hung request")
    parser.add_argument("--queue-limit", type=int, default=20, help="API_QUEUE_DEPTH_LIMIT of the server")
    parser.add_argument(
        "--definitions", type=int, default=20, help="definitions the run starts cycle through"
    )
    parser.add_argument("--small-runs", type=int, default=50)
    parser.add_argument("--small-records", type=int, default=1000, help="records a side of a small run")
    parser.add_argument("--locust", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.locust:
        spec_path, out_path = args.locust
        Path(out_path).write_text(json.dumps(locust_phase(json.loads(Path(spec_path).read_text()))))
        return 0

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["LOG_LEVEL"] = "WARNING"
    # Broker keys of our own: this bench's worker consumes only this bench's messages.
    os.environ["CELERY_KEY_PREFIX"] = f"bench-load-{uuid.uuid4().hex[:8]}:"
    import django

    django.setup()
    from django.db import connection, connections
    from django.test.utils import setup_databases, teardown_databases

    from jfintech.testing import processes

    name = os.environ.get("BENCH_DATABASE_NAME") or f"bench_load_{connection.settings_dict['NAME']}"
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    databases = setup_databases(
        verbosity=0, interactive=False, keepdb=bool(os.environ.get("BENCH_DATABASE_NAME"))
    )
    rates = [float(x) for x in args.rates.split(",")]
    factors = [float(f) for f in args.factors.split(",")]
    clients = math.ceil(max(rates) * max(factors) / PER_CLIENT_RATE)  # one API key per client
    results: dict = {"steps": [], "overload": [], "settings": vars(args) | {"locust": None}}
    failures: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server_env = {
        "OTEL_TRACES_EXPORTER": "none",
        "LOG_LEVEL": "WARNING",
        "API_QUEUE_DEPTH_LIMIT": args.queue_limit,
        "API_QUEUE_DEPTH_CACHE_SECONDS": 1,
        **processes.metrics_env(workdir, "web", port_variable=None),
    }
    queues = "default,ingest,reconciliation,fetch"
    worker = processes.celery_worker(
        "bench-load", queues, workdir, concurrency=2, OTEL_TRACES_EXPORTER="none", LOG_LEVEL="INFO"
    )
    server = processes.gunicorn_server(workdir, **server_env)
    try:
        data = seed(clients, args.definitions, args.small_records)
        connections.close_all()
        worker.start()
        server.start()
        url = server.extra["url"]
        worker.wait_for_log(" ready.", timeout=120)
        processes.wait_until(
            lambda: _answers(f"{url}/livez"), timeout=120, message=f"gunicorn:\n{server.tail()}"
        )
        seeded = start_runs(url, data["keys"][0], data["definitions"], data["as_of"])
        drained = drain(seeded, timeout=120)
        if drained.get("completed") != len(seeded):
            failures.append(f"seed runs not completed: {drained}")
        base = {"url": url, "hang_seconds": args.hang_seconds, "run_ids": seeded, **data}
        print(f"load benchmark: gunicorn 2x4 threads + 1 worker (2 processes) on {os.cpu_count()} cores, "
              f"{len(data['definitions'])} definitions; p99 target {P99_TARGET_MS} ms; "
              f"API_QUEUE_DEPTH_LIMIT={args.queue_limit}", flush=True)  # fmt: skip
        header = f"{'phase':<12} {'target':>6} {'offered':>8} {'accepted':>9} {'p50 ms':>7} {'p95 ms':>7} "
        print(header + f"{'p99 ms':>7} {'hung':>5}  by status")

        def phase(label: str, rate: float, seconds: float) -> dict:
            r = run_phase(label, rate, seconds, base, workdir)
            r["runs"] = drain(r["accepted_runs"], timeout=max(60.0, seconds * 2))
            report(label, r)
            if r["server_errors"] or r["hung"]:
                failures.append(f"{label}: {r['server_errors']} 5xx (not 503), {r['hung']} hung")
            if r["runs"].get("completed", 0) != len(r["accepted_runs"]):
                failures.append(f"{label}: accepted runs not all completed: {r['runs']}")
            return r

        def sustained(rate: float) -> bool:
            r = phase(f"step {rate:g}", rate, args.step_seconds)
            results["steps"].append(r)
            held = (r["p99_ms"] or 0) <= P99_TARGET_MS and r["offered_rps"] >= 0.9 * rate
            return held and not r["by_status"].get("503")

        capacity, beyond = None, None
        for rate in rates:
            if not sustained(rate):
                beyond = rate
                break
            capacity = rate
        if capacity is not None and beyond is not None and sustained((capacity + beyond) / 2):
            capacity = (capacity + beyond) / 2  # one bisection step between the last held and the first not
        if capacity is None:
            capacity = rates[0]
            print(f"note: no step held p99 <= {P99_TARGET_MS} ms; the overload phases use the lowest rate")
        results["capacity_rps"] = capacity
        print(f"sustained rate (p99 <= {P99_TARGET_MS} ms): {capacity:g} requests/s", flush=True)
        for factor in factors:
            results["overload"].append(phase(f"{factor:g}x", capacity * factor, args.phase_seconds))

        if args.small_runs:
            small = small_runs(url, data["keys"][0], data["as_of"], args.small_runs)
            results["small_runs"] = small
            print(f"small runs ({args.small_records} records a side, POST -> completed, "
                  f"{small['runs']} runs): p50 {small['p50_s']:.2f} s, p95 {small['p95_s']:.2f} s, "
                  f"max {small['max_s']:.2f} s, failed {small['failed']}")  # fmt: skip
            if small["failed"]:
                failures.append(f"small runs: {small['failed']} failed")
    finally:
        server.stop()
        worker.stop()
        connections.close_all()
        _drop_broker_keys(os.environ["CELERY_KEY_PREFIX"])
        if not os.environ.get("BENCH_DATABASE_NAME"):
            teardown_databases(databases, verbosity=0)
    for r in results["steps"] + results["overload"]:
        r.pop("accepted_runs")
    results["failures"] = failures
    out = Path(os.environ.get("BENCH_RESULTS", "bench/results")) / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    for failure in failures:
        print(f"!! {failure}")
    return 1 if failures else 0


def _drop_broker_keys(prefix: str) -> None:
    """The bench's queues and task results (its own key prefix) go with it."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{prefix}*", count=1000):
        client.delete(key)


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    sys.exit(main())
