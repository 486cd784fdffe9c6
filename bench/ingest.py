"""Ingestion benchmark: file to committed rows, against a bare COPY of the same rows.

    python -m bench.ingest [--rows 1000000] [--repeat 3] [--keep]

Generates its own data (not timed): a trades CSV and a settlements CSV of ``--rows`` rows (the
settlements use ; separators, dd/mm/YYYY dates, decimal commas and a D/C column, so the
validator's normalisation is exercised), a camt.053 and an MT940 statement of ``--rows / 10`` entries. Each
load runs in its own subprocess (so its peak RSS is its own) through ``batch_ingest_file``; the
baseline streams the same rows, pre-rendered in COPY text format, with one bare ``COPY`` into the
same partitioned table. Each is run ``--repeat`` times, alternating, and the medians are printed
(the machine is shared; one run can be off by a third). CSV and camt are also loaded at a quarter
of the size: streamed parsing keeps peak memory flat as the file grows (MT940 and BAI2 libraries
read whole files: capped).

Data goes into a dedicated month far in the future for tenant ``bench-ingest``; that month's
partition is truncated between scenarios and dropped at the end. Prints figures only (no asserts).
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
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

TENANT = "bench-ingest"
YEARS_AHEAD = 30
TRADES = {
    "columns": {
        "external_id": "trade_id",
        "business_date": "trade_date",
        "account": "account",
        "instrument": "isin",
        "quantity": "quantity",
        "amount": "amount",
        "currency": "ccy",
    }
}
SETTLEMENTS = {
    "columns": {
        "external_id": "ref",
        "business_date": "settle_date",
        "account": "acct",
        "amount": "amt",
        "currency": "ccy",
        "reference": "trade_ref",
    },
    "delimiter": ";",
    "date_format": "%d/%m/%Y",
    "decimal_separator": ",",
    "sign": {"column": "dc", "negative": ["D"], "positive": ["C"]},
}
COPY_COLUMNS = (
    "tenant_id, source_id, batch_id, kind, business_date, external_id, account, currency, amount, line_no"
)


def bench_month() -> date:
    today = date.today()
    return date(today.year + YEARS_AHEAD, today.month, 1)


def day_of(i: int) -> date:
    return bench_month() + timedelta(days=i % 28)


# --- data (not timed) -----------------------------------------------------------------------


def amount_of(i: int) -> Decimal:
    return Decimal((i * 7919) % 10_000_000 - 5_000_000) / 100


TRADES_HEADER = "trade_id,trade_date,account,isin,quantity,amount,ccy\n"


def trade_line(i: int, external_id: str = "") -> str:
    return (
        f"{external_id or f'T{i:09d}'},{day_of(i).isoformat()},ACC{i % 500:04d},XS{i % 9000:010d},"
        f"{i % 1000},{amount_of(i)},EUR\n"
    )


def write_trades(path: Path, rows: int, copy_path: Path | None, ids: dict) -> None:
    with open(path, "w") as f, open(copy_path, "w") if copy_path else open(os.devnull, "w") as c:
        f.write(TRADES_HEADER)
        for i in range(rows):
            d, amount = day_of(i), amount_of(i)
            f.write(trade_line(i))
            c.write(
                f"{ids['tenant']}\t{ids['source']}\t{ids['batch']}\ttrade\t{d.isoformat()}\tT{i:09d}\t"
                f"ACC{i % 500:04d}\tEUR\t{amount}\t{i + 2}\n"
            )


def write_settlements(path: Path, rows: int, copy_path: Path | None, ids: dict) -> None:
    with open(path, "w") as f, open(copy_path, "w") if copy_path else open(os.devnull, "w") as c:
        f.write("ref;settle_date;acct;amt;dc;ccy;trade_ref\n")
        for i in range(rows):
            d, amount = day_of(i), amount_of(i)
            text = f"{abs(amount):.2f}".replace(".", ",")
            f.write(
                f"S{i:09d};{d:%d/%m/%Y};ACC{i % 500:04d};{text};{'D' if amount < 0 else 'C'};USD;T{i:09d}\n"
            )
            c.write(
                f"{ids['tenant']}\t{ids['source']}\t{ids['batch']}\tsettlement\t{d.isoformat()}\tS{i:09d}\t"
                f"ACC{i % 500:04d}\tUSD\t{amount}\t{i + 2}\n"
            )


def statement_of(entries: int, sid: str):
    from reconciliation.ingestion.samples import Entry, Statement

    day = bench_month() + timedelta(days=1)

    def make():
        for i in range(entries):
            yield Entry(
                amount_of(i),
                day,
                ref=f"E{i}",
                end_to_end=f"E2E{i}",
                counterparty=f"CPTY {i % 97}",
                description=f"INV {i}",
            )

    return Statement(sid, "GB33BUKB20201555555555", "GBP", Decimal("1000000.00"), day, day, make)


def write_statement(kind: str, path: Path, entries: int, sid: str, copy_path: Path | None, ids: dict) -> None:
    from reconciliation.ingestion.samples import camt_chunks, mt940_chunks

    statement = statement_of(entries, sid)
    chunks = camt_chunks([statement]) if kind == "camt053" else mt940_chunks([statement])
    with open(path, "w") as f:
        for chunk in chunks:
            f.write(chunk)
    if copy_path:
        day = (bench_month() + timedelta(days=1)).isoformat()
        with open(copy_path, "w") as c:
            for i in range(entries):
                c.write(
                    f"{ids['tenant']}\t{ids['source']}\t{ids['batch']}\tstatement\t{day}\t{sid}/E{i}\t"
                    f"GB33BUKB20201555555555\tGBP\t{amount_of(i)}\t{i + 1}\n"
                )


# --- measured children ----------------------------------------------------------------------


def child_ingest(source_id: int, path: str) -> dict:
    import django

    django.setup()
    from jfintech.audit import Actor
    from reconciliation.ingestion.services import batch_ingest_file
    from reconciliation.models import DataSource

    source = DataSource.objects.select_related("tenant").get(pk=source_id)
    started = time.perf_counter()
    batch = batch_ingest_file(tenant=source.tenant, actor=Actor.for_system("bench"), source=source, path=path)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "status": batch.status,
        "rows": batch.rows_total,
        "accepted": batch.rows_accepted,
        "rejected": batch.rows_rejected,
        "reject": batch.reject_reason[:200],
        "timings": batch.timings,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_copy(path: str) -> dict:
    import django

    django.setup()
    from django.db import connection, transaction

    started = time.perf_counter()
    sql = f"COPY reconciliation_record ({COPY_COLUMNS}) FROM STDIN"
    with transaction.atomic(), connection.cursor() as cursor, open(path, "rb") as f, cursor.copy(sql) as copy:
        while chunk := f.read(1 << 20):
            copy.write(chunk)
    seconds = time.perf_counter() - started
    with open(path, "rb") as f:
        rows = sum(1 for _ in f)
    return {
        "seconds": seconds,
        "rows": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(*args) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingest", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- orchestration ----------------------------------------------------------------------------


def prepare() -> dict:
    import django

    django.setup()
    from jfintech.audit import Actor
    from jfintech.tenancy.models import Tenant
    from reconciliation import partitions
    from reconciliation.ingestion.services import source_upsert
    from reconciliation.models import DataSource, IngestionBatch

    cleanup()
    tenant, _ = Tenant.objects.get_or_create(slug=TENANT, defaults={"name": "Ingestion benchmark"})
    tenant.window_months_ahead = YEARS_AHEAD * 12 + 12
    tenant.save()
    actor = Actor.for_system("bench")
    sources = {}
    for name, kind, fmt, mapping in [
        ("trades", "trade", "csv", TRADES),
        ("settlements", "settlement", "csv", SETTLEMENTS),
        ("camt", "statement", "camt053", {}),
        ("mt940", "statement", "mt940", {}),
        ("baseline", "trade", "csv", TRADES),
    ]:
        sources[name], _ = source_upsert(
            tenant=tenant, actor=actor, name=f"bench-{name}", kind=kind, format=fmt, mapping=mapping
        )
    partitions.ensure_partitions(bench_month(), bench_month())
    baseline_batch = IngestionBatch.objects.create(tenant=tenant, source=sources["baseline"], sha256="0" * 64)
    DataSource.objects.filter(pk__in=[s.pk for s in sources.values()]).update(is_active=True)
    return {"tenant": tenant.pk, "sources": {k: s.pk for k, s in sources.items()}, "batch": baseline_batch.pk}


def truncate() -> None:
    from django.db import connection

    from reconciliation.partitions import partition_name

    with connection.cursor() as cursor:
        cursor.execute(f'TRUNCATE "{partition_name(bench_month())}"')


def cleanup() -> None:
    from django.db import connection

    from jfintech.tenancy.models import Tenant
    from reconciliation.models import IngestionBatch, Rejection, StatementBalance
    from reconciliation.partitions import existing_partitions, partition_name

    name = partition_name(bench_month())
    if name in existing_partitions():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE "{name}"')
    tenant = Tenant.objects.filter(slug=TENANT).first()
    if tenant:
        Rejection.objects.filter(tenant=tenant).delete()
        StatementBalance.objects.filter(tenant=tenant).delete()
        IngestionBatch.objects.filter(tenant=tenant).delete()


def median_run(runs: list[dict]) -> dict:
    """The run with the median time (an odd count gives a real run, not an average)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main(rows: int, keep: bool, only: list[str] | None = None, repeat: int = 3) -> None:
    ids = prepare()
    base = {"tenant": ids["tenant"], "batch": ids["batch"], "source": ids["sources"]["baseline"]}
    entries = max(rows // 10, 10)
    scenarios = [
        ("trades CSV", "trades", rows, lambda p, n, c: write_trades(p, n, c, base), True),
        ("settlements CSV", "settlements", rows, lambda p, n, c: write_settlements(p, n, c, base), False),
        (
            "camt.053",
            "camt",
            entries,
            lambda p, n, c: write_statement("camt053", p, n, f"C{n}", c, base),
            True,
        ),
        ("MT940", "mt940", entries, lambda p, n, c: write_statement("mt940", p, n, f"M{n}", c, base), False),
    ]
    print(
        f"ingestion benchmark: {rows} CSV rows, {entries} statement entries (PostgreSQL, 1 process per load;"
        f" medians of {repeat} runs, bare COPY and load alternating)"
    )
    print(
        f"{'scenario':<16} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'peak MB':>8} {'COPY rows/s':>12} "
        f"{'x COPY':>7}  memory at 1/4 size"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for label, source, n, write, flat_check in scenarios:
            if only and source not in only:
                continue
            data, copy_file = Path(tmp) / f"{source}.dat", Path(tmp) / f"{source}.copy"
            write(data, n, copy_file)
            quarter = None
            if flat_check:
                small = Path(tmp) / f"{source}-quarter.dat"
                write(small, n // 4, None)
                quarter = run_child("load", str(ids["sources"][source]), str(small))
                truncate()
                cleanup_batches(ids["sources"][source])
            # Alternating bare COPY and load, `repeat` times each, so both see the same machine.
            copies, loads = [], []
            for _ in range(repeat):
                truncate()
                copies.append(run_child("copy", str(copy_file)))
                truncate()
                cleanup_batches(ids["sources"][source])
                loads.append(run_child("load", str(ids["sources"][source]), str(data)))
            truncate()
            copy, load = median_run(copies), median_run(loads)
            rate, copy_rate = load["rows"] / load["seconds"], copy["rows"] / copy["seconds"]
            memory = (
                f"{quarter['peak_rss_mb']:.0f} MB (vs {load['peak_rss_mb']:.0f})"
                if quarter
                else ("streamed (not re-measured)" if source != "mt940" else "read whole (size capped)")
            )
            print(
                f"{label:<16} {load['rows']:>9} {load['seconds']:>8.2f} {rate:>10.0f} "
                f"{load['peak_rss_mb']:>8.0f} {copy_rate:>12.0f} {load['seconds'] / copy['seconds']:>7.2f}  "
                f"{memory}",
                flush=True,
            )
            if load["status"] != "loaded" or load["rejected"]:
                print(f"  !! {label}: status {load['status']}, {load['rejected']} rejected: {load['reject']}")
            print(f"  stages: {load['timings']}")
            print(
                f"  runs (s): load {[round(r['seconds'], 2) for r in loads]}, "
                f"COPY {[round(r['seconds'], 2) for r in copies]}"
            )
            results.append({"scenario": label, "loads": loads, "copies": copies, "quarter": quarter})
        wanted = not only or "staged" in only
        staged = staged_into_a_loaded_month(ids, rows, repeat, Path(tmp)) if wanted else None
    if not keep:
        cleanup()
    out = Path(os.environ.get("BENCH_RESULTS", "bench/results")) / "ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "results": results, "staged": staged}, indent=2, default=str))


def staged_into_a_loaded_month(ids: dict, rows: int, repeat: int, tmp: Path) -> dict:
    """A correction file (1/10,000 of ``rows``) on the staged path into a month already holding
    ``rows`` trades of its source: what the staged duplicate check costs against a full month
    (docs/scaling.md, F1). Half its rows repeat
    loaded keys (the direct path's COPY fails on the one-active-version index, so the file is
    staged, and they are rejected duplicate_key); half are new keys, different in every run."""
    source = ids["sources"]["trades"]
    truncate()
    cleanup_batches(source)
    month = tmp / "staged-month.dat"
    with open(month, "w") as f:
        f.write(TRADES_HEADER)
        f.writelines(trade_line(i) for i in range(rows))
    run_child("load", str(source), str(month))
    # As autovacuum leaves it a minute later. Never analysed (0 pages in pg_class after TRUNCATE),
    # the planner takes the month for one row and, before F1's fix, nested-looped it over the
    # staged rows: a 10k-row file ran for over 8 minutes (docs/scaling.md).
    from django.db import connection

    from reconciliation.partitions import partition_name

    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{partition_name(bench_month())}"')
    size = max(rows // 10_000, 10)  # a correction file: where a scan of the month costs most
    step = max(rows // size, 1)
    loads = []
    for n in range(repeat):
        path = tmp / f"staged-{n}.dat"
        with open(path, "w") as f:
            f.write(TRADES_HEADER)
            for i in range(0, size * step, step):
                f.write(trade_line(i, "" if (i // step) % 2 == 0 else f"N{n}-{i:09d}"))
        loads.append(run_child("load", str(source), str(path)))
    truncate()
    load = median_run(loads)
    print(
        f"{'staged, 1/10k':<16} {load['rows']:>9} {load['seconds']:>8.2f}  into a month of {rows} rows:"
        f" {load['rejected']} duplicate_key, {load['accepted']} new",
        flush=True,
    )
    print(f"  stages: {load['timings']}")
    print(f"  runs (s): load {[round(r['seconds'], 2) for r in loads]}")
    return {"month_rows": rows, "loads": loads}


def cleanup_batches(source_id: int) -> None:
    """The quarter-size load's batch (its rows were truncated) so the full load is not a duplicate."""
    from reconciliation.models import IngestionBatch, Rejection, StatementBalance

    Rejection.objects.filter(batch__source_id=source_id).delete()
    StatementBalance.objects.filter(source_id=source_id).delete()
    IngestionBatch.objects.filter(source_id=source_id).delete()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "load", "copy"])
    parser.add_argument("args", nargs="*")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the loaded data (default: drop it)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (medians are printed)")
    parser.add_argument(
        "--only",
        action="append",
        choices=["trades", "settlements", "camt", "mt940", "staged"],
        help="run only these scenarios (repeatable)",
    )
    options = parser.parse_args()
    if options.mode == "load":
        print(json.dumps(child_ingest(int(options.args[0]), options.args[1]), default=str))
    elif options.mode == "copy":
        print(json.dumps(child_copy(options.args[0])))
    else:
        main(options.rows, options.keep, options.only, options.repeat)
