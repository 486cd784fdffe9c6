"""Reporting at scale: the break list exported as CSV and XLSX (rows/s, peak RSS: flat from 100k
to 1M, since rows stream from a server-side cursor into a constant-memory writer), and the aging
and trends reports' query time over the same number of cases.

    python -m bench.reporting [--sizes 100000,1000000] [--rounds 2]

Runs in a throwaway database next to DATABASE_URL's (created and dropped here). Cases and their
history (case.opened for every case, case.resolved for 40%, spread over 60 days) are written by
INSERT … SELECT. Each export runs in its own process, so its peak RSS is its own. Prints figures
and writes bench/results/reporting.json; nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)

CASES_SQL = """
INSERT INTO exceptions_case (tenant_id, fingerprint, break_type, record_ids, snapshot, differences,
    amount_at_stake, currency, reference, account, instrument, definition_id, definition_name, rule,
    first_run_id, last_run_id, run_count, trace_id, status, resolution_reason, resolution_note,
    reopen_count, priority, sla_due_at, first_seen_at, last_seen_at, opened_at, resolved_at, resolved_by,
    created_at, updated_at)
SELECT %(tenant)s, md5(%(offset)s + g || ''), (ARRAY['amount_mismatch','missing_left','missing_right',
       'date_mismatch'])[1 + g %% 4], '{}', '{}', '{}', round((g %% 100000) / 7.0, 2),
       (ARRAY['EUR','USD','GBP'])[1 + g %% 3], 'REF-' || g, 'ACC-' || (g %% 50), '', 1, 'bench', '',
       1, 1, 1, '', CASE WHEN g %% 5 < 2 THEN 'resolved' ELSE 'open' END,
       CASE WHEN g %% 5 < 2 THEN 'timing' ELSE '' END, '', 0, 'normal',
       %(now)s - (g %% 60) * interval '1 day' + interval '5 days',
       %(now)s - (g %% 60) * interval '1 day', %(now)s, %(now)s - (g %% 60) * interval '1 day',
       CASE WHEN g %% 5 < 2 THEN %(now)s - (g %% 60) * interval '1 day' + interval '30 hours' END, '',
       %(now)s, %(now)s
FROM generate_series(1, %(n)s) g
"""
EVENTS_SQL = """
INSERT INTO jfintech_auditevent (tenant_id, occurred_at, actor_kind, actor_id, actor_display, action,
    object_type, object_id, before, after, request_id, trace_id, prev_hash, signature)
SELECT c.tenant_id, c.first_seen_at, 'system', 'bench', 'bench', 'case.opened', 'exceptions.case',
       c.id::text, NULL, jsonb_build_object('status', 'open', 'amount_at_stake', c.amount_at_stake::text,
       'priority', 'normal', 'assignee_id', NULL, 'sla_due_at', c.sla_due_at), '', '', '', ''
FROM exceptions_case c WHERE c.tenant_id = %(tenant)s
UNION ALL
SELECT c.tenant_id, c.resolved_at, 'system', 'bench', 'bench', 'case.resolved', 'exceptions.case',
       c.id::text, jsonb_build_object('status', 'open'), jsonb_build_object('status', 'resolved'),
       '', '', '', ''
FROM exceptions_case c WHERE c.tenant_id = %(tenant)s AND c.status = 'resolved'
"""


class _Sink:
    def __init__(self):
        self.bytes = 0

    def write(self, chunk):
        self.bytes += len(chunk)


def child(fmt: str, tenant_id: int) -> dict:
    import django

    django.setup()
    from jfintech.tenancy.models import Tenant
    from reporting import exports

    tenant = Tenant.objects.get(pk=tenant_id)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Django, the libraries
    started = time.perf_counter()
    counted = [0]

    def rows():
        for row in exports.case_rows(tenant=tenant):
            counted[0] += 1
            yield row

    meta = [("Tenant", tenant.slug)]
    if fmt == "csv":
        size = sum(len(chunk) for chunk in exports.csv_stream(meta, exports.CASE_COLUMNS, rows()))
    else:
        with exports.xlsx_file(meta, exports.CASE_COLUMNS, rows(), created=NOW) as f:
            size = f.seek(0, 2)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "format": fmt,
        "rows": counted[0],
        "seconds": seconds,
        "bytes": size,
        "peak_rss_mb": peak,
        "baseline_rss_mb": baseline,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="cases, comma separated")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each report query")
    parser.add_argument("--child", nargs=2, metavar=("FORMAT", "TENANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["LOG_LEVEL"] = "WARNING"
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0
    import django

    django.setup()
    from django.db import connection, connections
    from django.test.utils import setup_databases, teardown_databases

    name = os.environ.get("BENCH_DATABASE_NAME") or f"bench_reporting_{connection.settings_dict['NAME']}"
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    databases = setup_databases(
        verbosity=0, interactive=False, keepdb=bool(os.environ.get("BENCH_DATABASE_NAME"))
    )
    s = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{s['USER']}{':' + s['PASSWORD'] if s.get('PASSWORD') else ''}"
        f"@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}",
    }
    from jfintech.tenancy.models import Tenant
    from reporting import reports

    results = []
    print("reporting benchmark: break list export (own process each) and report queries")
    print(
        f"{'cases':>9} {'what':<16} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'peak MB':>8} {'base MB':>8} "
        f"{'MB out':>7}"
    )
    try:
        for i, n in enumerate(int(x) for x in args.sizes.split(",")):
            tenant = Tenant.objects.create(slug=f"bench-{i}", name=f"Bench {i}", timezone="UTC")
            with connection.cursor() as cursor:
                cursor.execute(CASES_SQL, {"tenant": tenant.pk, "n": n, "now": NOW, "offset": i * 10**9})
                cursor.execute(EVENTS_SQL, {"tenant": tenant.pk})
                cursor.execute("ANALYZE exceptions_case; ANALYZE jfintech_auditevent")
            for fmt in ("csv", "xlsx"):
                run = subprocess.run(
                    [sys.executable, "-m", "bench.reporting", "--child", fmt, str(tenant.pk)],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(run.stdout.strip().splitlines()[-1])
                results.append({"cases": n, "what": f"export {fmt}", **r})
                print(
                    f"{n:>9} {'export ' + fmt:<16} {r['rows']:>9} {r['seconds']:>8.2f} "
                    f"{r['rows'] / r['seconds']:>9.0f} {r['peak_rss_mb']:>8.1f} {r['baseline_rss_mb']:>8.1f} "
                    f"{r['bytes'] / 2**20:>7.1f}"
                )
            queries = {
                "aging by type": lambda t=tenant: reports.aging_report(
                    tenant=t, by="break_type", user=None, now=NOW
                ),
                "trends 60 days": lambda t=tenant: reports.trends_report(
                    tenant=t,
                    date_from=(NOW - timedelta(days=60)).date(),
                    date_to=NOW.date(),
                    user=None,
                    now=NOW,
                ),
            }
            for what, build in queries.items():
                times = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    build()
                    times.append(time.perf_counter() - started)
                median = statistics.median(times)
                results.append({"cases": n, "what": what, "seconds": median, "rounds": times})
                print(f"{n:>9} {what:<16} {'':>9} {median:>8.2f}")
    finally:
        connections.close_all()
        if not os.environ.get("BENCH_DATABASE_NAME"):
            teardown_databases(databases, verbosity=0)
    out = Path(os.environ.get("BENCH_RESULTS", "bench/results")) / "reporting.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
