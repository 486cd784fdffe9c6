"""Matching depth in the reconciliation benchmark: ``python -m bench.reconcile --scenarios depth``.

A two-way scenario whose rules have every pass type of docs/matching-depth.md — exact, tolerance,
fuzzy reference (matching at similarity 1, suggesting at ~0.6), and aggregation 1:N, N:1 and M:N —
and whose data injects each of them next to every break type (missing on either side, amount
mismatch, duplicate, different currencies). Checked against the injected truth: the breaks, and the
groups each fuzzy and aggregation pass found (precision and recall must all be 1.0). The fuzzy and
aggregation passes are timed separately (the run's own per-pass timings).

Then the same records under two more definitions on the same sources, run as sharded runs by real
worker processes (``RECON_SHARD_THRESHOLD`` low, 4 shards): once with one worker process, once with
two. Their outcome must be identical to the unsharded run's, record by record (an md5 over every
outcome labelled with external ids).

Every pass keeps ``account`` among its keys (and the break keys), so the rules are shardable.
Amounts are chosen so that no pass can pair records of two different injected cases: parts of
groups carry three or four decimals, amounts of cases are distinct per case.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

SHARDS = 4
ACCOUNT_REF = ["account", "reference"]
DEPTH_RULES = {
    "passes": [
        {"name": "exact", "type": "exact", "keys": ACCOUNT_REF},
        {"name": "near", "type": "tolerance", "keys": ACCOUNT_REF, "amount": {"absolute": "0.01"}},
        {"name": "fuzzy", "type": "fuzzy", "keys": ["account"], "min_similarity": "0.5",
         "auto_threshold": "0.9", "suggest_threshold": "0.5"},
        {"name": "agg_1n", "type": "aggregate", "cardinality": "one_to_many", "keys": ACCOUNT_REF},
        {"name": "agg_n1", "type": "aggregate", "cardinality": "many_to_one", "keys": ACCOUNT_REF},
        {"name": "agg_mn", "type": "aggregate", "cardinality": "many_to_many", "keys": ACCOUNT_REF},
    ],
    "break_keys": ACCOUNT_REF,
}  # fmt: skip
GROUP_PASSES = ("fuzzy", "agg_1n", "agg_n1", "agg_mn")
BLOCKS = (
    "missing_right", "missing_left", "amount", "duplicate", "near", "currency",
    "fuzzy", "suggest", "one_to_many", "many_to_one", "many_to_many",
)  # fmt: skip


def generate_depth(n: int, month: date, ids: dict, tmp: Path) -> dict:
    """N cases; each normal case one exact pair, each injected case its shape (see BLOCKS)."""
    from bench.reconcile import Writer, amount_of

    k = max(5, n // 2000)
    block = {name: range(i * k, (i + 1) * k) for i, name in enumerate(BLOCKS)}
    kind_of = {i: name for name, r in block.items() for i in r}
    left = Writer(tmp / "depth-left.tsv", ids, "ledger", "ledger")
    right = Writer(tmp / "depth-right.tsv", ids, "statement", "statement")
    truth, groups = [], {name: [] for name in GROUP_PASSES} | {"suggested": []}
    for i in range(n):
        day = month + timedelta(days=i % 28)
        acct, ref, amount = f"ACC{i % 500:04d}", f"R{i:09d}", amount_of(i)

        def lrow(ext, reference=ref, value=amount, day=day, acct=acct, **kw):
            left.row(ext, day, account=acct, reference=reference, amount=value, value_date=day, **kw)

        def rrow(ext, reference=ref, value=amount, day=day, acct=acct, **kw):
            right.row(ext, day, account=acct, reference=reference, amount=value, value_date=day, **kw)

        case = kind_of.get(i)
        if case == "missing_right":
            lrow(f"L{i}")
            truth.append(("missing_right", [f"L{i}"]))
        elif case == "missing_left":
            rrow(f"S{i}")
            truth.append(("missing_left", [f"S{i}"]))
        elif case == "amount":  # 5.005 off: never another case's amount (those have two decimals)
            lrow(f"L{i}")
            rrow(f"S{i}", value=amount + Decimal("5.005"))
            truth.append(("amount_mismatch", [f"L{i}", f"S{i}"]))
        elif case == "duplicate":
            lrow(f"L{i}")
            rrow(f"S{i}")
            lrow(f"L{i}-copy")
            truth.append(("duplicate", [f"L{i}-copy"]))
        elif case == "near":
            lrow(f"L{i}")
            rrow(f"S{i}", value=amount + Decimal("0.01"))
        elif case == "currency":
            lrow(f"L{i}")
            rrow(f"S{i}", currency="USD")
            truth += [("missing_right", [f"L{i}"]), ("missing_left", [f"S{i}"])]
        elif case == "fuzzy":  # the same words: similarity 1, matched
            lrow(f"L{i}", reference=f"INV {i:09d} ACME")
            rrow(f"S{i}", reference=f"inv-{i:09d}-acme")
            groups["fuzzy"].append([f"L{i}", f"S{i}"])
        elif case == "suggest":  # similarity 0.61 .. 0.68: suggested
            lrow(f"L{i}", reference=f"ACME Corp {i:09d}")
            rrow(f"S{i}", reference=f"acme corporation {i:09d}")
            groups["suggested"].append([f"L{i}", f"S{i}"])
        elif case == "one_to_many":  # right parts: three decimals
            lrow(f"L{i}", reference=f"B{i:09d}")
            parts = [Decimal("100.005"), Decimal("200.004"), amount - Decimal("300.009")]
            for j, part in enumerate(parts):
                rrow(f"S{i}-{j}", reference=f"B{i:09d}", value=part)
            groups["agg_1n"].append([f"L{i}"] + [f"S{i}-{j}" for j in range(3)])
        elif case == "many_to_one":  # left parts: four decimals
            for j, part in enumerate([Decimal("50.0005"), amount - Decimal("50.0005")]):
                lrow(f"L{i}-{j}", reference=f"C{i:09d}", value=part)
            rrow(f"S{i}", reference=f"C{i:09d}")
            groups["agg_n1"].append([f"L{i}-0", f"L{i}-1", f"S{i}"])
        elif case == "many_to_many":
            for j, part in enumerate([Decimal("70.0007"), amount - Decimal("70.0007")]):
                lrow(f"L{i}-{j}", reference=f"D{i:09d}", value=part)
            for j, part in enumerate([Decimal("10.003"), Decimal("20.003"), amount - Decimal("30.006")]):
                rrow(f"S{i}-{j}", reference=f"D{i:09d}", value=part)
            groups["agg_mn"].append([f"L{i}-0", f"L{i}-1", f"S{i}-0", f"S{i}-1", f"S{i}-2"])
        else:
            lrow(f"L{i}")
            rrow(f"S{i}")
    left.close()
    right.close()
    return {
        "files": {"ledger": str(tmp / "depth-left.tsv"), "statement": str(tmp / "depth-right.tsv")},
        "records": left.rows + right.rows,
        "truth": truth,
        "groups": groups,
        "as_of": month + timedelta(days=27),
    }


def prepare_sharded(ids: dict, kind: str, sides: dict, rules: dict, workers: tuple[int, ...]) -> dict:
    """A definition per sharded run on the scenario's sources (matches are per definition, so each
    sees every record as an open item): {"sharded_<workers>": definition id}."""
    from jfintech.audit import Actor
    from jfintech.tenancy.models import Tenant
    from reconciliation.runs import services

    tenant = Tenant.objects.get(pk=ids["tenant"])
    extra = {}
    for count in workers:
        definition = services.definition_create(
            tenant=tenant, actor=Actor.for_system("bench"), name=f"bench-{kind}-sharded-{count}w",
            kind=kind, sources=sides, rules=rules, lookback_days=27, lookahead_days=10,
            deadline_seconds=3600,
        )  # fmt: skip
        extra[f"sharded_{count}"] = definition.pk
    return extra


_OUTCOME_DIGEST = """
WITH members AS (
    SELECT mi.match_id, string_agg(r.external_id, ',' ORDER BY r.external_id) AS ids
    FROM reconciliation_match m
    JOIN reconciliation_match_item mi ON mi.match_id = m.id
    JOIN reconciliation_record r ON r.id = mi.record_id AND r.business_date = mi.business_date
    WHERE m.run_id = %(run)s GROUP BY mi.match_id
), labels AS (
    SELECT m.pass_name || ':' || m.run_outcome || ':' || x.ids AS label
    FROM members x JOIN reconciliation_match m ON m.id = x.match_id
    UNION ALL
    SELECT b.break_type || ':' || (
        SELECT string_agg(r.external_id, ',' ORDER BY r.external_id) FROM reconciliation_record r
        JOIN unnest(b.record_ids, b.record_dates) AS k(id, day) ON r.id = k.id AND r.business_date = k.day)
    FROM reconciliation_break b WHERE b.run_id = %(run)s
)
SELECT md5(string_agg(label, '|' ORDER BY label)), count(*) FROM labels
"""


def outcome_digest(run_id: int) -> tuple[str, int]:
    """An md5 over every outcome of the run, labelled with external ids: equal for two runs exactly
    when they matched, suggested and broke the same records the same way."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_OUTCOME_DIGEST, {"run": run_id})
        return cursor.fetchone()


def check_groups(run, spec: dict) -> dict:
    """Per fuzzy/aggregation pass (and for the suggestions): found vs injected groups of external ids."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT CASE WHEN m.run_outcome = 'suggested' THEN 'suggested' ELSE m.pass_name END,
                   array_agg(r.external_id ORDER BY r.external_id)
            FROM reconciliation_match m
            JOIN reconciliation_match_item mi ON mi.match_id = m.id
            JOIN reconciliation_record r ON r.id = mi.record_id AND r.business_date = mi.business_date
            WHERE m.run_id = %s AND (m.pass_name = ANY(%s) OR m.run_outcome = 'suggested')
            GROUP BY m.id, m.pass_name, m.run_outcome
            """,
            [run.pk, list(GROUP_PASSES)],
        )
        found: dict = {}
        for name, members in cursor.fetchall():
            found.setdefault(name, set()).add(tuple(members))
    out = {}
    for name, injected in spec["groups"].items():
        truth = {tuple(sorted(g)) for g in injected}
        got = found.get(name, set())
        hits = len(got & truth)
        out[name] = {
            "injected": len(truth),
            "found": len(got),
            "precision": hits / len(got) if got else 1.0,
            "recall": hits / len(truth) if truth else 1.0,
        }
    return out


def sharded_child(spec: dict) -> dict:
    """One sharded run on real worker processes (a private queue pair), with ``spec["workers"]``
    worker processes; its wall time, and whether its outcome is the unsharded run's."""
    import django

    django.setup()
    from django.db import connections

    from jfintech.testing import processes
    from reconciliation.matching.models import RunShard
    from reconciliation.runs import services, tasks
    from reconciliation.runs.models import Definition, Run

    suffix = uuid.uuid4().hex[:8]
    fetch_q, compute_q = f"bench-fetch-{suffix}", f"bench-compute-{suffix}"
    workdir = Path(spec["workdir"])
    worker = processes.celery_worker(
        f"bench-{suffix}", f"{fetch_q},{compute_q}", workdir, concurrency=spec["workers"],
        RECON_SHARD_THRESHOLD=1000, RECON_SHARD_COUNT=spec["shards"], LOG_LEVEL="INFO",  # its " ready." line
        # The test settings' 25 s task limit is for tests; a million-record shard may take longer.
        CELERY_VISIBILITY_TIMEOUT=3600, CELERY_TASK_TIME_LIMIT=3300, CELERY_TASK_SOFT_TIME_LIMIT=3200,
    )  # fmt: skip
    worker.start()
    try:
        worker.wait_for_log(" ready.", timeout=120)
        definition = Definition.objects.select_related("tenant").get(pk=spec["definition"])
        started = time.perf_counter()
        as_of = date.fromisoformat(spec["as_of"])
        run = services.run_start(
            tenant=definition.tenant, actor=services.RUNNER, definition=definition, trigger="cli",
            as_of=as_of, dispatch=False,
        )  # fmt: skip
        tasks.run_chord(run.pk, fetch_queue=fetch_q, compute_queue=compute_q).apply_async()
        while not (run := Run.objects.get(pk=run.pk)).is_terminal:
            time.sleep(0.1)
        wall = time.perf_counter() - started
    finally:
        worker.stop()
        connections.close_all()
    if run.status != "completed":
        return {"error": f"sharded run {run.pk} {run.status}: {run.error}"}
    digest = outcome_digest(run.pk)
    shard_s = [sum(v for k, v in s.timings.items()) for s in RunShard.objects.filter(run=run)]
    return {
        "workers": spec["workers"],
        "wall_s": wall,
        "compute_s": run.timings.get("compute"),
        "shards": len(shard_s),
        "shard_s": shard_s,
        "digest": digest,
        "counts": {
            "in_scope": run.records_in_scope,
            "matched": run.matched,
            "suggested": run.suggested,
            "in_breaks": run.in_breaks,
            "conservation_ok": run.conservation.get("ok"),
        },
    }


def report_depth(r: dict) -> bool:
    """Print the depth scenario's own lines; True when everything checked out."""
    rt = r["run_timings"]
    per_pass = {p["name"]: rt.get(f"pass:{p['name']}", 0.0) for p in DEPTH_RULES["passes"]}
    print("    passes (s): " + ", ".join(f"{k} {v:.3f}" for k, v in per_pass.items()))
    ok = True
    for name, g in r["groups"].items():
        good = g["precision"] == g["recall"] == 1.0 and g["found"] == g["injected"]
        ok &= good
        print(
            f"    {name:<18} injected {g['injected']:>6} found {g['found']:>6} "
            f"precision {g['precision']:.3f} recall {g['recall']:.3f}{'' if good else '  !!'}"
        )
    return ok


def report_sharded(r: dict) -> bool:
    """Print a scenario's sharded runs against its unsharded one and the floor; True when each gave
    the unsharded outcome and conserved."""
    ok = True
    for s in r.get("sharded", []):
        same = s["digest"] == r["digest"]
        ok &= same and bool(s["counts"]["conservation_ok"])
        shards = ", ".join(f"{x:.2f}" for x in s["shard_s"])
        verdict = "identical to" if same else "DIFFERENT FROM"
        print(
            f"    sharded run, {s['workers']} worker process(es), {s['shards']} shards: "
            f"wall {s['wall_s']:.2f} s = {s['wall_s'] / r['floor']['total_s']:.2f}x the floor (compute "
            f"{s['compute_s']:.2f} s; shards {shards} s); outcome {verdict} the unsharded run's"
            f"{'' if same else '  !!'}"
        )
    return ok
