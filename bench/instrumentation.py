"""What tracing and metrics cost a reconciliation run: instrumentation on vs off, same process, same data.

    python -m bench.instrumentation [--records 5000] [--rounds 7]

The workload is a real two-way run (fetch both sides, set-based matching in PostgreSQL, breaks,
cases, conservation) executed inline by ``run_execute_inline`` (the chord's services, in this
process, so broker and scheduling noise stay out of the figure) on ``--records`` records per side.
Rounds alternate off/on (and on/off) so drift on a shared machine hits both modes alike.

- on:  every span recorded and exported (BatchSpanProcessor to a JSON-lines file: the real
       serialisation and I/O of an exporter), psycopg instrumented (a span per statement), the
       query-duration histogram on every statement, multiprocess metric files.
- off: the same code with a sampler that drops every span (non-recording spans cost a function
       call), psycopg not instrumented, no query timer.

Prints the median seconds per run in each mode and the overhead (target <= 5%, issue 8). Uses a
throwaway test database (created and dropped here) next to DATABASE_URL's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class ToggleSampler:
    """ALWAYS_ON (parent-based) while ``on``, else drops every span: one process, both modes."""

    def __init__(self):
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

        self.on = True
        self._on = ParentBased(TraceIdRatioBased(1.0))
        self._off = ALWAYS_OFF

    def should_sample(self, *args, **kwargs):
        return (self._on if self.on else self._off).should_sample(*args, **kwargs)

    def get_description(self):
        return "ToggleSampler"


def _setup_tracing(spans_dir: str) -> tuple[ToggleSampler, object]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from jfintech.observability.tracing import JsonLinesFileExporter

    sampler = ToggleSampler()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(JsonLinesFileExporter(spans_dir)))
    trace.set_tracer_provider(provider)
    return sampler, provider


def set_mode(on: bool, sampler: ToggleSampler) -> None:
    from django.db import connection
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    from jfintech.observability.metrics import _observe_query
    from jfintech.observability.tracing import PSYCOPG_INSTRUMENT_OPTIONS

    sampler.on = on
    instrumentor = PsycopgInstrumentor()
    if on and not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(**PSYCOPG_INSTRUMENT_OPTIONS)
    if not on and instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    # psycopg instrumentation applies to new connections; the query timer to this wrapper object.
    connection.close()
    connection.ensure_connection()
    wrappers = connection.execute_wrappers
    if on and _observe_query not in wrappers:
        wrappers.append(_observe_query)
    if not on and _observe_query in wrappers:
        wrappers.remove(_observe_query)


def make_definition(records_per_side: int):
    """A two-way definition with ``records_per_side`` records a side: 90% match, the rest break."""
    from jfintech.tests.factories import TenantFactory
    from reconciliation.runs.tests.factories import records
    from reconciliation.runs.tests.test_matching import two_way

    defn, left, right = two_way(TenantFactory(slug=f"bench-{time.time_ns()}"))
    matched = int(records_per_side * 0.9)
    records(left, *({"reference": f"R{i}", "amount": f"{i}.00"} for i in range(records_per_side)))
    unmatched = records_per_side - matched
    records(right, *({"reference": f"R{i}", "amount": f"{i}.00"} for i in range(matched)),
            *({"reference": f"X{i}", "amount": "1.00"} for i in range(unmatched)))  # fmt: skip
    return defn


def one_run(defn) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds, exporter thread included) of one run."""
    from reconciliation.runs import services
    from reconciliation.runs.tests.factories import ACTOR, AS_OF

    started, cpu = time.perf_counter(), time.process_time()
    run = services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF,
                             dispatch=False)  # fmt: skip
    run = services.run_execute_inline(run)
    elapsed = time.perf_counter() - started, time.process_time() - cpu
    if run.status != "completed":
        raise RuntimeError(f"bench run {run.pk} ended {run.status}: {run.error}")
    return elapsed


def measure(*, records_per_side: int, rounds: int, sampler: ToggleSampler, provider) -> dict:
    defn = make_definition(records_per_side)
    set_mode(True, sampler)
    one_run(defn)  # warm-up: opens the cases the later runs only carry forward
    times = {"off": [], "on": []}
    for i in range(rounds):
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
            set_mode(mode == "on", sampler)
            wall, cpu = one_run(defn)
            if mode == "on":
                flush_started = time.perf_counter()
                provider.force_flush()  # the export is part of the cost: count what is left of it
                wall += time.perf_counter() - flush_started
            times[mode].append((wall, cpu))
    result = {"times": times}
    for i, what in enumerate(("wall", "cpu")):
        off = statistics.median(t[i] for t in times["off"])
        on = statistics.median(t[i] for t in times["on"])
        # Paired: each round's on/off ratio, so drift between rounds on a shared machine cancels.
        paired = statistics.median(
            on_[i] / off_[i] for on_, off_ in zip(times["on"], times["off"], strict=True)
        )
        result[what] = {"off": off, "on": on, "overhead": on / off - 1, "paired": paired - 1}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=5000, help="records per side (default 5000)")
    parser.add_argument("--rounds", type=int, default=7, help="runs per mode (default 7)")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="jf-bench-instr-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(workdir, "prometheus")
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    os.environ["LOG_LEVEL"] = "WARNING"  # the same few lines in both modes; keep the terminal readable
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    # Never the test suite's database (test_<name>): a bench of our own, dropped at the end.
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        f"bench_instr_{connection.settings_dict['NAME']}"
    )
    sampler, provider = _setup_tracing(os.path.join(workdir, "spans"))
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        result = measure(
            records_per_side=args.records, rounds=args.rounds, sampler=sampler, provider=provider
        )
    finally:
        from django.db import connections

        connections.close_all()
        teardown_databases(databases, verbosity=0)
    spans = sum(1 for p in Path(workdir, "spans").glob("*.jsonl") for _ in p.open())
    print(f"instrumentation overhead on a reconciliation run ({args.records} records a side, "
          f"{args.rounds} runs per mode, medians)")  # fmt: skip
    for what, label in (("wall", "wall time"), ("cpu", "CPU of this process")):
        r = result[what]
        print(f"  {label:20} off {r['off']:.3f} s   on {r['on']:.3f} s   overhead {r['overhead']:+.1%}"
              f"   (paired per round: {r['paired']:+.1%})")  # fmt: skip
    print(f"  target <= +5.0% wall; spans exported while on: {spans}")
    print("  wall off: " + " ".join(f"{w:.3f}" for w, _ in result["times"]["off"]))
    print("  wall on:  " + " ".join(f"{w:.3f}" for w, _ in result["times"]["on"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
