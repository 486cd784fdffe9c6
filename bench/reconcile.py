"""Reconciliation benchmark: generated data with injected breaks, end to end, against a bare floor.

    python -m bench.reconcile [--sizes 100000,1000000] [--scenarios two_way,three_way,depth] [--shards 4]

For each size N, three scenarios:

- two-way: N ledger lines vs N statement lines (rules: exact reference pass, then a tolerance pass
  of 0.01 and a 2-day value-date window);
- three-way: N trades vs N settlements plus opening and closing positions for 2,000
  account/instrument pairs (exact pass on account, reference, amount and quantity; then the
  tolerance pass; a settlement is in its trade's account, and keyed on it the run can be sharded);
- depth: two-way with every pass type of docs/matching-depth.md (fuzzy references matched and
  suggested, aggregation 1:N, N:1 and M:N) injected next to the break types, its fuzzy and
  aggregation passes timed separately, and the same records run as sharded runs on real worker
  processes, one and two (bench/reconcile_depth.py).

Every break type the engine has is injected (``N / 2000`` of each, at least 5): missing on either
side, amount / quantity / date mismatch, duplicate, different currencies (two missing breaks),
position breaks (three-way); and near-misses that the tolerance pass must match (not breaks). The
engine's breaks are compared with that truth: precision and recall must both be 1.0.

Measured, in a subprocess per scenario (so its peak RSS is its own): COPY of the records into the
partitioned table (plus ANALYZE), the two or three fetches (scope freeze), and the compute phases
as the run records them (load, passes, breaks, persist, conservation, cases). Then the same records
under another definition as a sharded run on real worker processes through both chords (two
workers; depth also one), wall time from the start to COMPLETED, its outcome compared with the
unsharded run's record by record (a digest). The floor, in the
same run: the same rows COPYed into two bare tables and one hash join counting the exact pairs.
Runs in a throwaway database next to DATABASE_URL's (created and dropped here). Prints figures
only; nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import reconcile_depth as depth  # noqa: E402  (the "depth" scenario)

COLUMNS = (
    "tenant_id, source_id, batch_id, kind, business_date, external_id, account, instrument, reference, "
    "currency, amount, quantity, value_date"
)
TWO_WAY_RULES = {
    "passes": [
        {"name": "exact_ref", "type": "exact", "keys": ["reference"], "date": {"field": "value_date"}},
        {
            "name": "near",
            "type": "tolerance",
            "keys": ["reference"],
            "amount": {"absolute": "0.01"},
            "date": {"field": "value_date", "window_days": 2},
        },
    ]
}
THREE_WAY_RULES = {
    "passes": [
        {
            "name": "exact_ref",
            "type": "exact",
            "keys": ["account", "reference"],
            "quantity": {"absolute": "0"},
            "date": {"field": "value_date"},
        },
        {
            "name": "near",
            "type": "tolerance",
            "keys": ["account", "reference"],
            "amount": {"absolute": "0.01"},
            "quantity": {"absolute": "0"},
            "date": {"field": "value_date", "window_days": 2},
        },
    ]
}
PAIRS = 2000  # account/instrument pairs of the three-way scenario
# The sharded runs of each scenario, by worker processes: two use both cores of the 2-core VM the
# figures in docs/ come from; depth also runs one, to show what sharding costs without parallelism.
SHARDED_WORKERS = {"two_way": (2,), "three_way": (2,), "depth": (1, 2)}


def month_of(size_index: int) -> date:
    """Each size gets its own month (its own partition), far from anyone's data: in the past, as a
    run's as-of date must be (a future one is refused, services.run_window)."""
    today = date.today()
    index = (today.year - 40) * 12 + size_index * 2
    return date(index // 12, index % 12 + 1, 1)


def amount_of(i: int) -> Decimal:
    return Decimal((i * 7919) % 10_000_000 - 3_000_000) / 100


# --- data (not timed) ---------------------------------------------------------------------------


class Writer:
    """COPY text rows for one source, and the truth about what was injected."""

    def __init__(self, path: Path, ids: dict, source: str, kind: str):
        self.f = open(path, "w")  # noqa: SIM115 (closed by close())
        self.prefix = f"{ids['tenant']}\t{ids['sources'][source]}\t{ids['batches'][source]}\t{kind}\t"
        self.rows = 0

    def row(
        self,
        ext,
        day,
        *,
        account="",
        instrument="",
        reference="",
        currency="EUR",
        amount=None,
        quantity=None,
        value_date=None,
    ):
        n = "\\N"
        self.f.write(
            f"{self.prefix}{day.isoformat()}\t{ext}\t{account}\t{instrument}\t{reference}\t{currency}\t"
            f"{n if amount is None else amount}\t{n if quantity is None else quantity}\t"
            f"{n if value_date is None else value_date.isoformat()}\n"
        )
        self.rows += 1

    def close(self):
        self.f.close()


def blocks(n: int) -> tuple[int, dict]:
    k = max(5, n // 2000)
    names = ["missing_right", "missing_left", "amount", "date", "duplicate", "near", "currency", "quantity"]
    return k, {name: range(i * k, (i + 1) * k) for i, name in enumerate(names)}


def generate_two_way(n: int, month: date, ids: dict, tmp: Path) -> dict:
    _, b = blocks(n)
    left = Writer(tmp / "left.tsv", ids, "ledger", "ledger")
    right = Writer(tmp / "right.tsv", ids, "statement", "statement")
    truth = []
    for i in range(n):
        day = month + timedelta(days=i % 28)
        ref, amount = f"R{i:09d}", amount_of(i)
        lkw = {"reference": ref, "amount": amount, "value_date": day, "account": "GL-1000"}
        rkw = dict(lkw)
        if i in b["missing_right"]:
            left.row(f"L{i}", day, **lkw)
            truth.append(("missing_right", [f"L{i}"]))
            continue
        if i in b["missing_left"]:
            right.row(f"S{i}", day, **rkw)
            truth.append(("missing_left", [f"S{i}"]))
            continue
        if i in b["amount"]:
            rkw["amount"] = amount + 5
            truth.append(("amount_mismatch", [f"L{i}", f"S{i}"]))
        elif i in b["date"]:
            rkw["value_date"] = day + timedelta(days=5)
            truth.append(("date_mismatch", [f"L{i}", f"S{i}"]))
        elif i in b["near"]:
            rkw["amount"], rkw["value_date"] = amount + Decimal("0.01"), day + timedelta(days=2)
        elif i in b["currency"]:
            rkw["currency"] = "USD"
            truth += [("missing_right", [f"L{i}"]), ("missing_left", [f"S{i}"])]
        left.row(f"L{i}", day, **lkw)
        right.row(f"S{i}", day, **rkw)
    for i in b["duplicate"]:  # after the originals: the copies get the higher ids
        day = month + timedelta(days=i % 28)
        left.row(
            f"L{i}-copy", day, reference=f"R{i:09d}", amount=amount_of(i), value_date=day, account="GL-1000"
        )
        truth.append(("duplicate", [f"L{i}-copy"]))
    left.close()
    right.close()
    return {
        "files": {"ledger": str(tmp / "left.tsv"), "statement": str(tmp / "right.tsv")},
        "records": left.rows + right.rows,
        "truth": truth,
        "as_of": month + timedelta(days=27),
    }


def generate_three_way(n: int, month: date, ids: dict, tmp: Path) -> dict:
    k, b = blocks(n)
    trades = Writer(tmp / "trades.tsv", ids, "trades", "trade")
    setts = Writer(tmp / "settlements.tsv", ids, "settlements", "settlement")
    positions = Writer(tmp / "positions.tsv", ids, "positions", "position")
    truth, flow = [], defaultdict(int)
    first, as_of = month, month + timedelta(days=27)
    for i in range(n):
        trade_day = month + timedelta(days=1 + i % 27)  # after the opening positions' day
        settle_day = trade_day + timedelta(days=2)
        account, instrument = f"ACC{i % 500:04d}", f"ISIN{i % PAIRS:06d}"
        ref, amount, qty = f"T{i:09d}", amount_of(i), (i % 97) + 1
        common = {"account": account, "instrument": instrument, "reference": ref}
        tkw = common | {"amount": amount, "quantity": qty, "value_date": settle_day}
        skw = dict(tkw)
        emit_trade = emit_sett = True
        if i in b["missing_right"]:
            emit_sett = False
            truth.append(("missing_right", [f"T{i}"]))
        elif i in b["missing_left"]:
            emit_trade = False
            truth.append(("missing_left", [f"S{i}"]))
        elif i in b["amount"]:
            skw["amount"] = amount + 5
            truth.append(("amount_mismatch", [f"T{i}", f"S{i}"]))
        elif i in b["quantity"]:
            skw["quantity"] = qty + 1
            truth.append(("quantity_mismatch", [f"T{i}", f"S{i}"]))
        elif i in b["date"]:
            skw["value_date"] = settle_day + timedelta(days=5)
            truth.append(("date_mismatch", [f"T{i}", f"S{i}"]))
        elif i in b["near"]:
            skw["amount"] = amount + Decimal("0.01")
        elif i in b["currency"]:
            skw["currency"] = "USD"
            truth += [("missing_right", [f"T{i}"]), ("missing_left", [f"S{i}"])]
        if emit_trade:
            trades.row(f"T{i}", trade_day, **tkw)
            flow[(account, instrument)] += qty
        if emit_sett:
            setts.row(f"S{i}", settle_day, **skw)
    for i in b["duplicate"]:
        trade_day = month + timedelta(days=1 + i % 27)
        settle_day = trade_day + timedelta(days=2)
        setts.row(
            f"S{i}-copy",
            settle_day,
            account=f"ACC{i % 500:04d}",
            instrument=f"ISIN{i % PAIRS:06d}",
            reference=f"T{i:09d}",
            amount=amount_of(i),
            quantity=(i % 97) + 1,
            value_date=settle_day,
        )
        truth.append(("duplicate", [f"S{i}-copy"]))
    broken = set(range(0, PAIRS, max(1, PAIRS // max(5, k // 10))))  # every so many pairs
    for p in range(PAIRS):
        account, instrument = f"ACC{p % 500:04d}", f"ISIN{p:06d}"
        opening = 1000 + p
        closing = opening + flow[(account, instrument)] + (7 if p in broken else 0)
        positions.row(f"P{p}-open", first, account=account, instrument=instrument, quantity=opening)
        positions.row(f"P{p}-close", as_of, account=account, instrument=instrument, quantity=closing)
        if p in broken:
            truth.append(("position_break", [account, instrument]))
    for w in (trades, setts, positions):
        w.close()
    files = {
        "trades": str(tmp / "trades.tsv"),
        "settlements": str(tmp / "settlements.tsv"),
        "positions": str(tmp / "positions.tsv"),
    }
    return {
        "files": files,
        "records": trades.rows + setts.rows + positions.rows,
        "truth": truth,
        "as_of": as_of,
    }


# --- the measured child ----------------------------------------------------------------------------


def copy_file(cursor, table: str, columns: str, path: str) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy, open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            copy.write(chunk)


def child(spec: dict) -> dict:
    import django

    django.setup()
    from django.db import connection, transaction

    from reconciliation.models import Record
    from reconciliation.runs import services
    from reconciliation.runs.models import Break, Definition

    timings = {}
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for path in spec["files"].values():
            copy_file(cursor, "reconciliation_record", COLUMNS, path)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reconciliation_record")
    timings["load (COPY + ANALYZE)"] = time.perf_counter() - started

    definition = Definition.objects.select_related("tenant").get(pk=spec["definition"])
    run = services.run_start(
        tenant=definition.tenant,
        actor=services.RUNNER,
        definition=definition,
        trigger="cli",
        as_of=date.fromisoformat(spec["as_of"]),
        dispatch=False,
    )
    run_started = time.perf_counter()
    run = services.run_execute_inline(run)
    timings["run"] = time.perf_counter() - run_started
    total = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if run.status != "completed":
        return {"error": f"run {run.pk} {run.status}: {run.error}"}

    found = set()
    breaks = list(
        Break.objects.filter(run=run).values_list("break_type", "record_ids", "account", "instrument")
    )
    ext = dict(
        Record.objects.filter(id__in=[i for b in breaks for i in b[1]]).values_list("id", "external_id")
    )
    for kind, ids, account, instrument in breaks:
        if kind == "position_break":
            found.add((kind, (account, instrument)))
        else:
            found.add((kind, tuple(sorted(ext[i] for i in ids))))
    truth = {
        (kind, tuple(sorted(keys)) if kind != "position_break" else tuple(keys))
        for kind, keys in spec["truth"]
    }
    hits = len(found & truth)
    by_type = defaultdict(lambda: [0, 0, 0])  # found, injected, hits
    for kind, _ in found:
        by_type[kind][0] += 1
    for kind, _ in truth:
        by_type[kind][1] += 1
    for kind, _ in found & truth:
        by_type[kind][2] += 1
    # A digest to compare the sharded runs with; depth: the groups each fuzzy/aggregation pass found.
    extra = {"digest": depth.outcome_digest(run.pk)}
    if "groups" in spec:
        extra["groups"] = depth.check_groups(run, spec)
    return extra | {
        "records": spec["records"],
        "total_s": total,
        "timings": timings,
        "run_timings": run.timings,
        "peak_rss_mb": peak,
        "precision": hits / len(found) if found else 1.0,
        "recall": hits / len(truth) if truth else 1.0,
        "breaks_found": len(found),
        "breaks_injected": len(truth),
        "by_type": dict(by_type),
        "counts": {
            "in_scope": run.records_in_scope,
            "matched": run.matched,
            "in_breaks": run.in_breaks,
            "excluded": run.excluded,
            "conservation_ok": run.conservation.get("ok"),
        },
    }


def floor(spec: dict) -> dict:
    """The same rows into two bare tables (no indexes, no partitions), then one hash join."""
    import django

    django.setup()
    from django.db import connection, transaction

    files = list(spec["files"].values())
    left, right = files[0], files[1]  # ledger/trades and statement/settlements
    with connection.cursor() as cursor:
        for t in ("bench_floor_l", "bench_floor_r"):
            cursor.execute(f"DROP TABLE IF EXISTS {t}")
            cursor.execute(f"CREATE TABLE {t} (LIKE reconciliation_record INCLUDING DEFAULTS)")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        copy_file(cursor, "bench_floor_l", COLUMNS, left)
        copy_file(cursor, "bench_floor_r", COLUMNS, right)
    copied = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = '256MB'")
        cursor.execute("ANALYZE bench_floor_l")
        cursor.execute("ANALYZE bench_floor_r")
        joined_at = time.perf_counter()
        cursor.execute(
            "SELECT count(*) FROM bench_floor_l l JOIN bench_floor_r r"
            " ON l.reference = r.reference AND l.currency = r.currency AND l.amount = r.amount"
        )
        pairs = cursor.fetchone()[0]
        joined = time.perf_counter() - joined_at
        for t in ("bench_floor_l", "bench_floor_r"):
            cursor.execute(f"DROP TABLE {t}")
    return {"copy_s": copied, "join_s": joined, "total_s": time.perf_counter() - started, "pairs": pairs}


def run_child(mode: str, spec: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f, default=str)
    out = subprocess.run(
        [sys.executable, "-m", "bench.reconcile", "--child", mode, f.name],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    os.unlink(f.name)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {mode} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- orchestration -------------------------------------------------------------------------------


def prepare(size_index: int, n: int, kind: str) -> dict:
    from jfintech.audit import Actor
    from jfintech.tenancy.models import Tenant
    from reconciliation.models import DataSource, IngestionBatch
    from reconciliation.partitions import add_months, ensure_partitions
    from reconciliation.runs import services

    month = month_of(size_index)
    ensure_partitions(month, add_months(month, 1))
    tenant = Tenant.objects.create(
        slug=f"bench-{kind.replace('_', '')}-{n}", name=f"bench {kind} {n}", timezone="UTC"
    )
    actor = Actor.for_system("bench")
    names = {
        "two_way": [("ledger", "ledger"), ("statement", "statement")],
        "depth": [("ledger", "ledger"), ("statement", "statement")],
        "three_way": [("positions", "position"), ("trades", "trade"), ("settlements", "settlement")],
    }[kind]
    sources, batches = {}, {}
    for name, record_kind in names:
        source = DataSource.objects.create(tenant=tenant, name=name, kind=record_kind)
        sources[name] = source.pk
        batches[name] = IngestionBatch.objects.create(
            tenant=tenant, source=source, sha256=f"{n}{name}".ljust(64, "0"), file_name="bench"
        ).pk
    definition_kind = "two_way" if kind == "depth" else kind  # depth: a two-way run with every pass type
    if kind in ("two_way", "depth"):
        sides = {"left": ["ledger"], "right": ["statement"]}
        rules = depth.DEPTH_RULES if kind == "depth" else TWO_WAY_RULES
    else:
        sides = {"position": ["positions"], "left": ["trades"], "right": ["settlements"]}
        rules = THREE_WAY_RULES
    definition = services.definition_create(
        tenant=tenant,
        actor=actor,
        name=f"bench-{kind}",
        kind=definition_kind,
        sources=sides,
        rules=rules,
        lookback_days=27,
        lookahead_days=10,
        deadline_seconds=3600,
    )
    ids = {
        "tenant": tenant.pk,
        "sources": sources,
        "batches": batches,
        "definition": definition.pk,
        "month": month,
    }
    workers = SHARDED_WORKERS[kind]
    return ids | depth.prepare_sharded(ids, definition_kind, sides, rules, workers)


def scenario(size_index: int, n: int, kind: str, tmp: Path, shards: int) -> dict:
    ids = prepare(size_index, n, kind)
    generate = {"two_way": generate_two_way, "three_way": generate_three_way, "depth": depth.generate_depth}
    data = generate[kind](n, ids["month"], ids, tmp)
    spec = data | {"definition": ids["definition"], "as_of": data["as_of"].isoformat()}
    measured = run_child("run", spec)
    if "error" in measured:
        raise RuntimeError(measured["error"])
    measured["sharded"] = []  # the same records as sharded runs on real worker processes
    for workers in SHARDED_WORKERS[kind]:
        sharded = spec | {
            "definition": ids[f"sharded_{workers}"],
            "workers": workers,
            "shards": shards,
            "workdir": str(tmp),
        }
        result = run_child("sharded", sharded)
        if "error" in result:
            raise RuntimeError(result["error"])
        measured["sharded"].append(result)
    base = run_child("floor", spec)
    for path in data["files"].values():
        os.unlink(path)
    return measured | {
        "floor": base,
        "ratio": measured["total_s"] / base["total_s"],
        "run_ratio": measured["timings"]["run"] / base["total_s"],
    }


def report(n: int, kind: str, r: dict) -> None:
    rt = r["run_timings"]
    fetch = sum(v for k, v in rt.items() if k.startswith("fetch:"))
    passes = sum(v for k, v in rt.items() if k.startswith("pass:"))
    run_s = r["timings"]["run"]
    print(
        f"{kind:<10} {n:>9} {r['records']:>9} {r['total_s']:>8.2f} {run_s:>7.2f} "
        f"{r['records'] / run_s:>10.0f} "
        f"{r['peak_rss_mb']:>8.0f} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['floor']['total_s']:>8.2f} "
        f"{r['ratio']:>6.2f} {r['run_ratio']:>6.2f}",
        flush=True,
    )
    phases = {
        "load": r["timings"]["load (COPY + ANALYZE)"],
        "fetch (freeze)": fetch,
        "compute:load": rt["load"],
        "passes": passes,
        "breaks": rt["breaks"],
        "persist": rt["persist"],
        "conservation": rt["conservation"],
        "cases": rt["cases"],
        "compute total": rt["compute"],
    }
    print("    phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    print(
        f"    floor: COPY {r['floor']['copy_s']:.2f} s + hash join {r['floor']['join_s']:.2f} s "
        f"({r['floor']['pairs']} exact pairs); breaks found {r['breaks_found']} / injected "
        f"{r['breaks_injected']}; {r['counts']}"
    )
    for kind_, (found, injected, hits) in sorted(r["by_type"].items()):
        flag = "" if found == injected == hits else "  !!"
        print(f"    {kind_:<18} injected {injected:>6} found {found:>6} correct {hits:>6}{flag}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="records per side, comma separated")
    parser.add_argument("--scenarios", default="two_way,three_way,depth")
    parser.add_argument("--shards", type=int, default=depth.SHARDS, help="shards of the sharded runs")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    if args.child:
        mode, path = args.child
        spec = json.loads(Path(path).read_text())
        modes = {"run": child, "floor": floor, "sharded": depth.sharded_child}
        print(json.dumps(modes[mode](spec), default=str))
        return 0

    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.db import connection, connections
    from django.test.utils import setup_databases, teardown_databases

    # A database of our own (the children connect to it too), dropped at the end.
    name = os.environ.get("BENCH_DATABASE_NAME") or f"bench_recon_{connection.settings_dict['NAME']}"
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    databases = setup_databases(
        verbosity=0, interactive=False, keepdb=bool(os.environ.get("BENCH_DATABASE_NAME"))
    )
    s = connection.settings_dict
    os.environ["DATABASE_URL"] = (
        f"postgres://{s['USER']}{':' + s['PASSWORD'] if s.get('PASSWORD') else ''}@"
        f"{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    )
    sizes = [int(x) for x in args.sizes.split(",")]
    results = []
    print("reconciliation benchmark (PostgreSQL, one process per scenario; records = both sides)")
    print("  total = COPY into the partitioned record table + run; run = fetches (scope freeze) + compute;")
    print("  records/s over the run; floor = bare COPY into two plain tables + one hash join")
    print(
        f"{'scenario':<10} {'per side':>9} {'records':>9} {'total s':>8} {'run s':>7} {'records/s':>10} "
        f"{'peak MB':>8} {'prec':>6} {'recall':>6} {'floor s':>8} {'xfloor':>6} {'run/fl':>6}"
    )
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="bench-recon-") as tmp:
            for size_index, n in enumerate(sizes):
                for kind in args.scenarios.split(","):
                    r = scenario(size_index, n, kind, Path(tmp), args.shards)
                    report(n, kind, r)
                    failed |= (
                        r["precision"] != 1.0 or r["recall"] != 1.0 or not r["counts"]["conservation_ok"]
                    )
                    if kind == "depth":
                        failed |= not depth.report_depth(r)
                    failed |= not depth.report_sharded(r)
                    results.append({"size": n, "scenario": kind, **r})
    finally:
        connections.close_all()
        if not os.environ.get("BENCH_DATABASE_NAME"):
            teardown_databases(databases, verbosity=0)
    out = Path(os.environ.get("BENCH_RESULTS", "bench/results")) / "reconcile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results}, indent=2, default=str))
    if failed:
        print("!! precision/recall below 1.0 or conservation failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
