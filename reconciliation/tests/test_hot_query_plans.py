"""The partition-pruning check (docs/scaling.md): the hot queries read only the months of their window
and the index meant for them.

The statements are the real ones: each test runs the code path (a run through its services, the
desk's case list through the API, a file through ingestion) with an execute wrapper that EXPLAINs
every statement it selects on the same connection, with the same parameters, right before it runs.
Django binds parameters client-side, so the dates are constants in the SQL PostgreSQL plans, as in
production: pruning happens at plan time and the plan names only the partitions kept.

Tables are given enough rows of other tenants, sources and months, then ANALYZEd, so the planner
chooses as it would on a real table; no planner setting is changed (on a table of ten rows a
sequential scan is the right plan, and forcing indexes would prove nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from exceptions.models import Case
from jfintech.tenancy.models import Role
from jfintech.tests.factories import member
from reconciliation.ingestion.tests.factories import TRADE_HEADER, SourceFactory
from reconciliation.ingestion.tests.test_services import ingest, reasons, write
from reconciliation.models import IngestionBatch
from reconciliation.partitions import ensure_partitions, partition_name
from reconciliation.runs import services
from reconciliation.runs.models import Break
from reconciliation.runs.tests.factories import ACTOR, TenantFactory, definition, records, source_of

pytestmark = pytest.mark.django_db(transaction=True)

MONTHS = [date(2026, 8, 1), date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)]
WINDOW = (date(2026, 10, 28), date(2026, 11, 3))  # spans two months
WINDOW_PARTITIONS = {partition_name(date(2026, 10, 1)), partition_name(date(2026, 11, 1))}


class ExplainEach:
    """An execute wrapper: ``EXPLAIN (FORMAT JSON)`` of each statement ``wanted(sql)`` selects, on the
    same cursor with the same parameters, before running it."""

    def __init__(self, wanted: Callable[[str], bool]):
        self.wanted = wanted
        self.plans: list[tuple[str, dict]] = []

    def __call__(self, execute, sql, params, many, context):
        if not many and self.wanted(sql):
            execute(f"EXPLAIN (FORMAT JSON) {sql}", params, many, context)
            self.plans.append((sql, context["cursor"].fetchone()[0][0]["Plan"]))
        return execute(sql, params, many, context)

    def only(self, marker: str) -> dict:
        found = [plan for sql, plan in self.plans if marker in sql]
        assert len(found) >= 1, f"no statement containing {marker!r} ran"
        return found[0]


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def scans_of(plan: dict, table_prefix: str) -> list[tuple[str, str, str | None]]:
    """(node type, relation, index) of every scan of a relation whose name starts with the prefix."""
    return [
        (n["Node Type"], n["Relation Name"], n.get("Index Name"))
        for n in nodes(plan)
        if n.get("Relation Name", "").startswith(table_prefix)
    ]


def parent_index(index: str) -> str:
    """A partition's index -> the partitioned table's index it is attached to."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE i.inhrelid = %s::regclass",
            [index],
        )
        row = cursor.fetchone()
    return row[0] if row else index


def index_columns(index: str) -> tuple[str, str]:
    """(table, first column) of an index."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indrelid::regclass::text, a.attname FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indexrelid = %s::regclass",
            [index],
        )
        return cursor.fetchone()


def bulk_records(source, first: date, last: date, per_day: int, status: str = "active") -> None:
    """``per_day`` records a day of ``source`` over [first, last]: the other data around the window."""
    ensure_partitions(first, last)
    with transaction.atomic():
        batch = IngestionBatch.objects.create(
            tenant_id=source.tenant_id, source=source, sha256=f"{source.pk}-{first}-{status}", status="loaded"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO reconciliation_record (tenant_id, source_id, batch_id, kind, business_date,
                    external_id, status, currency, amount, reference)
                SELECT %(tenant)s, %(source)s, %(batch)s, %(kind)s, d::date,
                    %(status)s || n || '-' || d::date, %(status)s, 'EUR', n, 'NOISE-' || n
                FROM generate_series(%(first)s::date, %(last)s::date, '1 day') d, generate_series(1, %(n)s) n
                """,
                {"tenant": source.tenant_id, "source": source.pk, "batch": batch.pk, "kind": source.kind,
                 "first": first, "last": last, "n": per_day, "status": status},
            )  # fmt: skip


def analyze(*tables: str) -> None:
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


def test_a_runs_scope_freeze_and_load_read_only_the_windows_months():
    tenant = TenantFactory()
    defn = definition(tenant, rules={"passes": [{"name": "ref", "type": "exact", "keys": ["reference"]}]})
    left, right = source_of(defn, "left"), source_of(defn, "right")
    # Around the run: its own sources in every month, other tenants' sources, superseded history.
    for source in (left, right):
        bulk_records(source, MONTHS[0], date(2026, 12, 31), per_day=40)
    for _ in range(3):
        other = SourceFactory(tenant=TenantFactory(), kind="ledger")
        bulk_records(other, MONTHS[0], date(2026, 12, 31), per_day=60)
    records(left, {"reference": "MATCH-1", "amount": "10", "business_date": date(2026, 10, 30)})
    records(right, {"reference": "MATCH-1", "amount": "10", "business_date": date(2026, 11, 2)})
    analyze("reconciliation_record")

    capture = ExplainEach(lambda sql: "FROM reconciliation_record r" in sql)
    run = services.run_start(tenant=tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=WINDOW[1],
                             date_from=WINDOW[0], date_to=WINDOW[1], dispatch=False)  # fmt: skip
    with connection.execute_wrapper(capture):
        run = services.run_execute_inline(run)
    assert run.status == "completed", run.error

    # The freeze (runs.services._FREEZE_SCOPE): the window's months only, each through the
    # one-active-version index, which leads with (tenant, source): a single-shard query on Citus.
    freeze = scans_of(capture.only("INSERT INTO reconciliation_run_scope"), "reconciliation_record")
    assert {relation for _, relation, _ in freeze} == WINDOW_PARTITIONS, freeze
    assert {(node, parent_index(index)) for node, _, index in freeze} == {
        ("Index Scan", "record_one_active_version")
    }
    # The load (matching.engine._load_pools) reads the frozen ids straight off a scan of the
    # window's months, by design (engine.py: a binary search per row in the frozen multirange costs
    # less than joining a table of ids); what matters is that no other month is read.
    for side in ("_l", "_r"):
        load = scans_of(capture.only(f"CREATE TEMP TABLE {side}"), "reconciliation_record")
        assert {relation for _, relation, _ in load} == WINDOW_PARTITIONS, load
        assert {node for node, _, _ in load} == {"Seq Scan"}, load

    # The next run: a copy of the matched MATCH-1 is a duplicate of it (matching.engine.
    # _duplicates_of_matched); its candidates are read off the window's months only.
    (copy,) = records(right, {"reference": "MATCH-1", "amount": "10", "business_date": date(2026, 11, 2)})
    capture = ExplainEach(lambda sql: "CREATE TEMP TABLE _dup_cand" in sql)
    again = services.run_start(tenant=tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=WINDOW[1],
                               date_from=WINDOW[0], date_to=WINDOW[1], dispatch=False)  # fmt: skip
    with connection.execute_wrapper(capture):
        again = services.run_execute_inline(again)
    assert again.status == "completed", again.error
    assert Break.objects.get(run=again, record_ids=[copy]).break_type == "duplicate"
    assert len(capture.plans) == 1  # both sides in one statement
    for _, plan in capture.plans:
        probe = scans_of(plan, "reconciliation_record")
        assert {relation for _, relation, _ in probe} == WINDOW_PARTITIONS, probe


def clone_cases_to_other_tenants(tenant, copies: int) -> None:
    """Other tenants' cases: copies of this tenant's, ``copies`` times each, in three other tenants."""
    columns = [
        f.column for f in Case._meta.concrete_fields if f.column not in ("id", "tenant_id", "fingerprint")
    ]
    listed = ", ".join(columns)
    with connection.cursor() as cursor:
        for other in [TenantFactory() for _ in range(3)]:
            cursor.execute(
                f"INSERT INTO exceptions_case (tenant_id, fingerprint, {listed})"
                f" SELECT %s, left(c.fingerprint, 56) || '-' || g, {', '.join('c.' + c for c in columns)}"
                " FROM exceptions_case c, generate_series(1, %s) g WHERE c.tenant_id = %s",
                [other.pk, copies, tenant.pk],
            )


def test_the_desks_case_list_reads_the_tenants_cases_by_index():
    tenant = TenantFactory()
    defn = definition(tenant, rules={"passes": [{"name": "ref", "type": "exact", "keys": ["reference"]}]})
    left = source_of(defn, "left")
    records(left, *[{"reference": f"R{i}", "amount": "1", "business_date": WINDOW[0]} for i in range(40)])
    run = services.run_start(tenant=tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=WINDOW[1],
                             date_from=WINDOW[0], date_to=WINDOW[1], dispatch=False)  # fmt: skip
    services.run_execute_inline(run)
    assert Case.objects.filter(tenant=tenant).count() == 40
    clone_cases_to_other_tenants(tenant, copies=100)
    analyze("exceptions_case")

    client = APIClient()
    client.force_login(member(tenant, Role.ANALYST))
    client.defaults["HTTP_X_TENANT"] = tenant.slug
    capture = ExplainEach(lambda sql: 'FROM "exceptions_case"' in sql)
    with connection.execute_wrapper(capture):
        for query in ({}, {"status": "open"}):  # the list as it opens, and the desk's usual filter
            response = client.get("/api/v1/exceptions/cases/", query)
            assert response.status_code == 200, response.content
            assert len(response.json()["results"]) == 40

    assert len(capture.plans) == 2
    for sql, plan in capture.plans:
        # (The assignee and root cause joined to each row are small tables: scanned whole, rightly.)
        assert not [scan for scan in scans_of(plan, "exceptions_case") if scan[0] == "Seq Scan"], sql
        used = [index_columns(n["Index Name"]) for n in nodes(plan) if "Index Name" in n]
        on_cases = {column for table, column in used if table == "exceptions_case"}
        # An index that begins with the tenant (the selector's scope): 40 rows of 4,040 read.
        assert on_cases == {"tenant_id"}, used


def test_an_ingests_duplicate_check_reads_only_the_batchs_months(tmp_path):
    source = SourceFactory()
    bulk_records(source, MONTHS[0], date(2026, 12, 31), per_day=40)
    for status in ("superseded", "linked"):  # history, which the check must read too
        bulk_records(source, MONTHS[0], date(2026, 12, 31), per_day=10, status=status)
    for _ in range(3):
        bulk_records(SourceFactory(tenant=TenantFactory()), MONTHS[0], date(2026, 12, 31), per_day=60)
    analyze("reconciliation_record")
    day1, day2 = WINDOW
    ingest(source, write(tmp_path, TRADE_HEADER + f"T1,{day1},A,I,10,EUR,\n", "a.csv"))
    capture = ExplainEach(lambda sql: "FROM reconciliation_record r" in sql)
    with connection.execute_wrapper(capture):
        again = ingest(
            source, write(tmp_path, TRADE_HEADER + f"T2,{day2},A,I,5,EUR,\nT1,{day1},A,I,10,EUR,\n", "b.csv")
        )
    assert reasons(again) == {3: "duplicate_key"}
    assert again.timings.get("stage_s") is not None  # the staged path, whose check is SQL

    # Every statement of the load that reads records reads only the months of the batch's rows.
    assert capture.plans
    for sql, plan in capture.plans:
        assert {
            relation for _, relation, _ in scans_of(plan, "reconciliation_record")
        } == WINDOW_PARTITIONS, sql
    # The duplicate check (loader.Staging.load: a non-reversed version at or above the row's) reads
    # the key through an index in each of its two passes: the active versions through
    # record_one_active_version, the history (superseded, linked) through record_history_version.
    # Before migration 0018 it was one pass on status <> 'reversed', which no index's predicate is
    # implied by: a Seq Scan of the batch's months, every tenant's rows (docs/scaling.md, F1).
    checks = [plan for sql, plan in capture.plans if "SET reason = 'duplicate_key'" in sql]
    assert len(checks) == 2, checks
    used = [
        {(node, parent_index(index)) for node, _, index in scans_of(plan, "reconciliation_record")}
        for plan in checks
    ]
    assert used == [
        {("Index Scan", "record_one_active_version")},
        {("Index Scan", "record_history_version")},
    ], used
    # The next version of an amendment without one reads the same two indexes.
    amend = scans_of(capture.only("SET version = coalesce(greatest("), "reconciliation_record")
    assert {parent_index(index) for _, _, index in amend} == {
        "record_one_active_version",
        "record_history_version",
    }, amend
