"""Sharded runs give the unsharded run's outcome, record for record: in this process and in real
worker processes through the second chord."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection

from jfintech.testing import processes
from jfintech.testing.processes import wait_until
from reconciliation.matching import engine, sharding
from reconciliation.matching.models import RunShard
from reconciliation.matching.passes import parse_rules
from reconciliation.matching.tests.factories import (
    ACTOR,
    AS_OF,
    TenantFactory,
    definition,
    records,
    source_of,
)
from reconciliation.runs import services, tasks
from reconciliation.runs.models import Match, Run

pytestmark = pytest.mark.django_db(transaction=True)

RULES = {
    "passes": [
        {"name": "exact", "type": "exact", "keys": ["account", "reference"]},
        {"name": "tol", "type": "tolerance", "keys": ["account", "reference"],
         "amount": {"absolute": "0.05"}},
        {"name": "fuzzy", "type": "fuzzy", "keys": ["account"], "min_similarity": "0.4",
         "auto_threshold": "0.9", "suggest_threshold": "0.4"},
        {"name": "agg", "type": "aggregate", "cardinality": "one_to_many", "keys": ["account", "reference"]},
    ],
    "break_keys": ["account", "reference"],
}  # fmt: skip


def load(defn, accounts: int = 12) -> None:
    """Every cardinality and break type, in every account (external ids equal across definitions)."""
    left, right = [], []
    for a in range(accounts):
        acct = f"ACC{a:03d}"

        def row(ext, ref, amount, acct=acct):
            return {"external_id": ext, "account": acct, "reference": ref, "amount": amount}

        left += [
            row(f"{acct}-L1", "A", "10.00"),  # exact
            row(f"{acct}-L2", "B", "20.00"),  # within tolerance
            row(f"{acct}-L3", "ACME Corp", "30.00"),  # fuzzy: suggested (similarity 0.5)
            row(f"{acct}-L4", "INV-2024-00123", "35.00"),  # fuzzy: matched (similarity 1)
            row(f"{acct}-L5", "BATCH", "300.00"),  # 1:N
            row(f"{acct}-L6", "C", "40.00"),  # amount mismatch
            row(f"{acct}-L7", "D", "50.00"),  # missing right
            row(f"{acct}-L8", "E", "60.00"),  # duplicate of L9 after L9 matched
            row(f"{acct}-L9", "E", "60.00"),
        ]
        right += [
            row(f"{acct}-R1", "A", "10.00"),
            row(f"{acct}-R2", "B", "20.04"),
            row(f"{acct}-R3", "acme corporation", "30.00"),
            row(f"{acct}-R4", "INV 2024 00123", "35.00"),
            row(f"{acct}-R5", "BATCH", "100.00"),
            row(f"{acct}-R6", "BATCH", "200.00"),
            row(f"{acct}-R7", "C", "41.00"),
            row(f"{acct}-R8", "F", "70.00"),  # missing left
            row(f"{acct}-R9", "E", "60.00"),
        ]
    records(source_of(defn, "left"), *left)
    records(source_of(defn, "right"), *right)


def outcome(run: Run) -> dict:
    """{external id: outcome}, where a match's outcome names its pass, status and members' external
    ids, and a break's its type and members': comparable across two definitions holding the same data."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.external_id, m.pass_name || ':' || m.run_outcome || ':' || (
                SELECT string_agg(r2.external_id, ',' ORDER BY r2.external_id)
                FROM reconciliation_match_item i2 JOIN reconciliation_record r2 ON r2.id = i2.record_id
                WHERE i2.match_id = m.id)
            FROM reconciliation_match m JOIN reconciliation_match_item mi ON mi.match_id = m.id
            JOIN reconciliation_record r ON r.id = mi.record_id
            WHERE m.run_id = %(run)s
            UNION ALL
            SELECT r.external_id, b.break_type || ':' || (
                SELECT string_agg(r2.external_id, ',' ORDER BY r2.external_id)
                FROM reconciliation_record r2 WHERE r2.id = ANY(b.record_ids))
            FROM reconciliation_break b JOIN reconciliation_record r ON r.id = ANY(b.record_ids)
            WHERE b.run_id = %(run)s AND b.break_type <> 'position_break'
            """,
            {"run": run.pk},
        )
        rows = cursor.fetchall()
    result = dict(rows)
    assert len(result) == len(rows), "a record in two outcomes"
    return result


def counts(run: Run) -> tuple:
    return (run.records_in_scope, run.matched, run.suggested, run.in_breaks, run.excluded, run.matches,
            run.breaks_by_type)  # fmt: skip


def two_definitions(rules=RULES):
    tenant = TenantFactory()
    plain, sharded = definition(tenant, rules=rules), definition(tenant, rules=rules)
    load(plain)
    load(sharded)
    return plain, sharded


def start(defn) -> Run:
    return services.run_start(
        tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF, dispatch=False
    )


def test_a_sharded_run_in_this_process_gives_the_unsharded_outcome():
    plain, sharded = two_definitions()
    baseline = services.run_execute_inline(start(plain))
    split = sharding.run_execute_sharded_inline(start(sharded), shard_count=3)
    assert split.status == "completed", split.error
    assert RunShard.objects.filter(run=split).count() == 3
    assert sorted(RunShard.objects.filter(run=split).values_list("records_in_scope", flat=True)) != [0, 0, 0]
    assert outcome(split) == outcome(baseline)
    assert counts(split) == counts(baseline)
    assert split.conservation["ok"]
    assert split.conservation["shards"] == 3
    # The same proof as the unsharded run's, field for field (strays, double counts, slots written).
    assert {k: v for k, v in split.conservation.items() if k != "shards"} == baseline.conservation
    # Each run's span is its matches' first and last id, the sharded one's across its shards.
    for run in (baseline, split):
        ids = Match.objects.filter(run_id=run.pk).values_list("id", flat=True)
        assert (run.first_match_id, run.last_match_id) == (min(ids), max(ids))
    assert set(baseline.breaks_by_type) == {"amount_mismatch", "duplicate", "missing_left", "missing_right"}


def test_the_next_run_keeps_copies_of_matched_records_duplicates_sharded_as_unsharded():
    """L9 is a copy of L8, which the first run matched: out of the next run's scope, L9 is still a
    duplicate, found through L8's active match by every shard as by the unsharded run."""
    plain, sharded = two_definitions()
    services.run_execute_inline(start(plain))
    sharding.run_execute_sharded_inline(start(sharded), shard_count=3)
    baseline = services.run_execute_inline(start(plain))
    split = sharding.run_execute_sharded_inline(start(sharded), shard_count=3)
    assert split.status == "completed", split.error
    assert outcome(split) == outcome(baseline)
    assert counts(split) == counts(baseline)
    assert split.conservation["ok"]
    assert baseline.conservation["ok"]
    copies = {ext: got for ext, got in outcome(baseline).items() if ext.endswith("-L9")}
    assert len(copies) == 12
    assert copies == {ext: f"duplicate:{ext}" for ext in copies}
    assert baseline.suggested == 24
    # A shard delivered again does nothing.
    assert sharding.run_match_shard(run_id=split.pk, shard_no=1, shard_count=3) == "terminal"


def load_dated(defn, accounts: int = 12) -> None:
    """Per account three 1:N groups with value dates around the batch's (a window of 2 days): TIGHT
    within the window and spanning 1 day, WIDE each within the window but spanning 4, LATE with a
    partial settlement 3 days late."""
    left, right = [], []
    for a in range(accounts):
        acct = f"ACC{a:03d}"

        def row(ext, ref, amount, offset, acct=acct):
            return {"external_id": f"{acct}-{ext}", "account": acct, "reference": ref, "amount": amount,
                    "value_date": AS_OF + timedelta(days=offset)}  # fmt: skip

        for ref, (first, second) in {"TIGHT": (0, 1), "WIDE": (-2, 2), "LATE": (0, 3)}.items():
            left.append(row(f"L-{ref}", ref, "90.00", 0))
            right += [row(f"R1-{ref}", ref, "30.00", first), row(f"R2-{ref}", ref, "60.00", second)]
    records(source_of(defn, "left"), *left)
    records(source_of(defn, "right"), *right)


@pytest.mark.parametrize(("group", "grouped"), [("member", {"TIGHT", "WIDE"}), ("span", {"TIGHT"})])
def test_aggregate_dates_give_the_unsharded_outcome_when_sharded(group, grouped):
    dated = {**RULES["passes"][3], "date": {"field": "value_date", "window_days": 2, "group": group}}
    rules = RULES | {"passes": [*RULES["passes"][:3], dated]}
    tenant = TenantFactory()
    plain, sharded = definition(tenant, rules=rules), definition(tenant, rules=rules)
    load_dated(plain)
    load_dated(sharded)
    baseline = services.run_execute_inline(start(plain))
    split = sharding.run_execute_sharded_inline(start(sharded), shard_count=3)
    assert split.status == "completed", split.error
    assert outcome(split) == outcome(baseline)
    assert counts(split) == counts(baseline)
    # The date condition did decide: these groups matched in every account, the others are breaks.
    matched = {ext.split("-")[-1] for ext, got in outcome(baseline).items() if got.startswith("agg:")}
    assert matched == grouped
    assert baseline.matches == 12 * len(grouped)


# Two-way rules keyed on the reference alone: every account's "A" competes with every other's, so
# the run splits by reference, not by account.
BY_REFERENCE = {
    "passes": [
        {"name": "exact", "type": "exact", "keys": ["reference"]},
        {"name": "tol", "type": "tolerance", "keys": ["reference"], "amount": {"absolute": "0.05"}},
        {"name": "agg", "type": "aggregate", "cardinality": "one_to_many", "keys": ["reference"]},
    ],
}


def test_rules_keyed_on_the_reference_alone_are_sharded_by_it_with_the_unsharded_outcome():
    assert engine.shard_column("two_way", parse_rules(BY_REFERENCE)) == "reference"
    plain, sharded = two_definitions(BY_REFERENCE)
    baseline = services.run_execute_inline(start(plain))
    split = sharding.run_execute_sharded_inline(start(sharded), shard_count=3)
    assert split.status == "completed", split.error
    parts = sorted(RunShard.objects.filter(run=split).values_list("records_in_scope", flat=True))
    assert parts[0] > 0  # each shard got some references
    # The references repeat across accounts: split by account, "A" of one account would have had
    # only its own account's "A" to choose from, and the pairs and breaks would differ.
    assert outcome(split) == outcome(baseline)
    assert counts(split) == counts(baseline)


def test_the_shard_column_is_a_key_every_pass_and_the_break_keys_compare():
    def column(rules, kind="two_way"):
        return engine.shard_column(kind, parse_rules(rules))

    assert column(RULES) == "account"  # preferred when it qualifies
    assert column(RULES, "three_way") == "account"
    # A three-way run's position check is per account: no other column will do.
    assert column(BY_REFERENCE, "three_way") is None
    across = {
        "passes": [{"name": "exact", "type": "exact", "keys": ["reference"]}],
        "break_keys": ["account"],
    }
    assert column(across) is None
    # The break keys classify by reference only: account is out, reference is not in every pass.
    assert column(RULES | {"break_keys": ["reference"]}) is None
    # A fuzzy pass compares the reference by similarity, not equality.
    fuzzy = BY_REFERENCE | {"passes": [*BY_REFERENCE["passes"], RULES["passes"][2]]}
    assert column(fuzzy | {"break_keys": ["reference"]}) is None
    # A side reading the column from another one is split by a different value.
    assert column(RULES | {"field_map": {"left": {"account": "counterparty"}}}) is None
    assert column(BY_REFERENCE | {"field_map": {"right": {"reference": "external_id"}}}) is None


@pytest.mark.workers
def test_a_large_run_is_sharded_into_a_second_chord_on_real_workers_with_the_same_outcome(tmp_path):
    plain, sharded = two_definitions()
    baseline = services.run_execute_inline(start(plain))
    suffix = uuid.uuid4().hex[:8]
    fetch_q, compute_q = f"shard-fetch-{suffix}", f"shard-compute-{suffix}"
    worker = processes.celery_worker(
        f"sharder-{suffix}",
        f"{fetch_q},{compute_q}",
        tmp_path,
        concurrency=2,
        RECON_SHARD_THRESHOLD=50,
        RECON_SHARD_COUNT=3,
    )
    worker.start()
    try:
        worker.wait_for_log(" ready.", timeout=90)
        run = start(sharded)
        tasks.run_chord(run.pk, fetch_queue=fetch_q, compute_queue=compute_q).apply_async()
        run = wait_until(
            lambda: Run.objects.filter(pk=run.pk, status__in=["completed", "failed"]).first(), timeout=120
        )
        logged = [r for r in worker.log_records() if r.get("event") == "recon_run_sharded"]
    finally:
        worker.stop()
    assert run.status == "completed", run.error
    assert [line["shards"] for line in logged] == [3]
    assert RunShard.objects.filter(run=run).count() == 3
    assert outcome(run) == outcome(baseline)
    assert counts(run) == counts(baseline)
    assert run.conservation["shards"] == 3
    assert {f"shard:{i}" for i in range(3)} <= set(run.timings)
