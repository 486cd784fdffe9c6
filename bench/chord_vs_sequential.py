"""The chord's parallel fetches against the same fetches in sequence.

    python -m bench.chord_vs_sequential [--latency 2.0] [--records 500] [--rounds 3]

A local upstream HTTP server answers three endpoints (positions, trades, settlements) after the
same added latency. A three-way definition's sources pull from it through the ingest connector
(``http``: every row through the normal batch path). Two ways to run the same reconciliation:

- chord: ``run_start`` sends ``chord([fetch_positions, fetch_trades, fetch_settlements],
  compute_reconciliation)`` to real Celery workers (fetch: threads pool; compute: prefork);
- sequential: the same three fetches one after the other, then the same compute, in this process
  (``run_execute_inline``).

Each round uses fresh sources (so neither mode sees the other's batches as duplicates). Wall time
is from the start of the run to its completion. Prints the medians and chord / sequential (target
<= 0.4x). Throwaway database and private broker keys; workers are started and stopped here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def payloads(records: int, today: date) -> dict:
    trades, settlements, positions, flow = [], [], [], {}
    for i in range(records):
        account, instrument, qty = f"ACC{i % 10}", f"ISIN{i % 20:04d}", (i % 9) + 1
        common = {
            "account": account,
            "instrument": instrument,
            "reference": f"T{i}",
            "currency": "EUR",
            "amount": f"{i}.25",
            "quantity": str(qty),
        }
        trades.append({"external_id": f"T{i}", "business_date": today.isoformat(), **common})
        settlements.append({"external_id": f"S{i}", "business_date": today.isoformat(), **common})
        flow[(account, instrument)] = flow.get((account, instrument), 0) + qty
    yesterday = today - timedelta(days=1)
    for n, ((account, instrument), qty) in enumerate(sorted(flow.items())):
        for day, value in ((yesterday, 100), (today, 100 + qty)):
            positions.append(
                {
                    "external_id": f"P{n}-{day}",
                    "business_date": day.isoformat(),
                    "account": account,
                    "instrument": instrument,
                    "quantity": str(value),
                    "currency": "EUR",
                }
            )
    return {"positions": positions, "trades": trades, "settlements": settlements}


class Upstream:
    def __init__(self, data: dict, latency: float):
        self.requests = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                upstream.requests += 1
                time.sleep(latency)  # the upstream's own latency, the same for every endpoint
                name = self.path.split("?")[0].strip("/").split("/")[-1]
                body = json.dumps({"records": data[name]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                """Quiet: the default handler writes every request to stderr."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def make_definition(url: str, label: str):
    from jfintech.audit import Actor
    from jfintech.tenancy.models import Tenant
    from reconciliation.models import DataSource
    from reconciliation.runs import services

    tenant = Tenant.objects.create(slug=f"bench-{label}-{uuid.uuid4().hex[:6]}", name=label, timezone="UTC")
    sources = {}
    for side, name, kind in (
        ("position", "positions", "position"),
        ("left", "trades", "trade"),
        ("right", "settlements", "settlement"),
    ):
        connector = {"type": "http", "url": f"{url}/{name}", "timeout_s": 30, "retries": 0}
        sources[side] = [
            DataSource.objects.create(tenant=tenant, name=name, kind=kind, format="json", connector=connector)
        ]
    return services.definition_create(
        tenant=tenant,
        actor=Actor.for_system("bench"),
        name="securities",
        kind="three_way",
        sources=sources,
        lookback_days=1,
        lookahead_days=0,
    )


def run_chord(defn, today) -> tuple[float, object]:
    from reconciliation.runs import services
    from reconciliation.runs.models import Run

    started = time.perf_counter()
    run = services.run_start(
        tenant=defn.tenant, actor=services.RUNNER, definition=defn, trigger="cli", as_of=today
    )
    while True:
        run.refresh_from_db()
        if run.status in ("completed", "failed"):
            return time.perf_counter() - started, run
        if time.perf_counter() - started > 300:
            raise TimeoutError(f"run {run.pk} still {run.status}")
        time.sleep(0.02)
    return 0.0, Run  # unreachable


def run_sequential(defn, today) -> tuple[float, object]:
    from reconciliation.runs import services

    started = time.perf_counter()
    run = services.run_start(
        tenant=defn.tenant, actor=services.RUNNER, definition=defn, trigger="cli", as_of=today, dispatch=False
    )
    run = services.run_execute_inline(run)
    return time.perf_counter() - started, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the upstream waits per request")
    parser.add_argument("--records", type=int, default=500, help="trades (and settlements) per fetch")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["CELERY_KEY_PREFIX"] = f"bench-chord-{uuid.uuid4().hex[:8]}:"  # private broker keys
    import django

    django.setup()
    from django.db import connection, connections
    from django.test.utils import setup_databases, teardown_databases

    from jfintech.testing import processes

    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        f"bench_chord_{connection.settings_dict['NAME']}"
    )
    databases = setup_databases(verbosity=0, interactive=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-chord-"))
    workers = [
        processes.celery_worker(
            "bench-main", "default,reconciliation", workdir, concurrency=2, LOG_LEVEL="INFO"
        ),
        processes.celery_worker(
            "bench-fetch", "fetch", workdir, pool="threads", concurrency=4, LOG_LEVEL="INFO"
        ),
    ]
    times: dict = {"chord": [], "sequential": []}
    parts: dict = {"fetch": [], "compute": []}
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_for_log(" ready.", timeout=90)
        today = date.today()
        upstream = Upstream(payloads(args.records, today), args.latency)
        warm = make_definition(upstream.url, "warmup")
        run_chord(warm, today)  # warm the workers' connections and imports
        for i in range(args.rounds):
            for mode in ("chord", "sequential") if i % 2 == 0 else ("sequential", "chord"):
                defn = make_definition(upstream.url, mode)
                wall, run = (run_chord if mode == "chord" else run_sequential)(defn, today)
                if run.status != "completed":
                    raise RuntimeError(f"{mode} run {run.pk} {run.status}: {run.error}")
                times[mode].append(wall)
                if mode == "chord":
                    fetches = [v for k, v in run.timings.items() if k.startswith("fetch:")]
                    parts["fetch"].append(max(fetches))
                    parts["compute"].append(run.timings.get("compute", 0))
        matched = run.matched
    finally:
        for w in workers:
            w.stop()
        connections.close_all()
        teardown_databases(databases, verbosity=0)
    chord, sequential = statistics.median(times["chord"]), statistics.median(times["sequential"])
    print(
        f"chord vs sequential: three fetches from a local upstream with {args.latency:.2f} s latency each, "
        f"{args.records} trades/settlements, {args.rounds} rounds (medians)"
    )
    print(f"  chord       {chord:7.3f} s   ({' '.join(f'{t:.2f}' for t in times['chord'])})")
    print(f"  sequential  {sequential:7.3f} s   ({' '.join(f'{t:.2f}' for t in times['sequential'])})")
    fetch, compute = statistics.median(parts["fetch"]), statistics.median(parts["compute"])
    print(
        f"  chord breakdown: slowest fetch {fetch:.2f} s (upstream {args.latency:.2f} s + ingest + freeze), "
        f"compute {compute:.2f} s, broker and scheduling {chord - fetch - compute:.2f} s"
    )
    print(f"  ratio       {chord / sequential:7.2f}x   (target <= 0.40x); records matched per run: {matched}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
