"""The matching engine: one entrance (``reconcile``), set-based SQL in PostgreSQL, nothing pulled
into Python but counts.

It runs inside the caller's transaction (services.run_compute): every table it writes (matches,
match items, breaks, exclusions) commits with the run's move to COMPLETED or not at all, so a worker
killed half-way leaves nothing behind and the redelivered task starts clean.

Working state lives in temporary tables dropped at commit:

    _l, _r       the left/right side's frozen scope, read off the records by its multirange of ids
                 (never modified);
                 the right side's amounts are negated first when the rules say amount_sign=opposite
    pools        the still-unmatched rows: pass 1 reads _l/_r, later passes read a pool rebuilt
                 after each pass (small once the exact pass has matched the bulk)
    _p           three-way: the frozen position records
    _cand        one pass's candidate pairs with their score (pass SQL: passes.py, fuzzy.py)
    _pairs       accepted pairs with pre-allocated match ids, score and status (active/suggested)
    _agg, _aggm  aggregation passes' matches (aggregation.py): one row per match with the member
                 ids of each side as arrays, and its members one per row
    _rejected    record sets analysts rejected as suggestions: never proposed again
    _excl        excluded records with their reason
    _brk         breaks: (type, left id, right id), at most one record per side in this issue
    _dup_u, _dup_cand  the leftovers and their identical records an active match holds, while
                 duplicates of earlier runs' matches are classified (dropped right after)

See docs/reconciliation.md for the outcomes and the conservation proof.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection

from reconciliation.matching import decisions
from reconciliation.matching.aggregation import AggregatePass
from reconciliation.matching.passes import TEXT_KEY_FIELDS, ExcludePass, KeyedPass, RuleSet

POSITION_EXCLUSION_REASON = "position: checked in aggregate"


class ConservationError(Exception):
    """Records in scope != matched + suggested + in breaks + excluded, or a record counted twice."""

    def __init__(self, conservation: dict):
        super().__init__(f"conservation failed: {conservation}")
        self.conservation = conservation


@dataclass
class EngineResult:
    records_in_scope: int = 0
    matched: int = 0
    suggested: int = 0
    in_breaks: int = 0
    excluded: int = 0
    matches: int = 0
    breaks_by_type: dict = field(default_factory=dict)
    conservation: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    by_kind: dict = field(default_factory=dict)  # {(kind, outcome): n} for metrics
    passes: list = field(default_factory=list)  # [{"pass", "matched_pairs", "excluded", "rounds"}]
    # (first, last) id of the matches written, read off the engine's own tables (Run.first_match_id);
    # None when it wrote none.
    match_ids: tuple[int, int] | None = None


@dataclass
class RunContext:
    """What the engine needs to know about the run (plain values; the engine imports no model)."""

    run_id: int
    tenant_id: int
    definition_id: int
    kind: str  # three_way | two_way
    as_of: object
    date_from: object
    date_to: object
    rule_label: str  # e.g. "v3"
    # (shard number, shard count): only the records whose shard column (shard_column) hashes to this
    # shard (a sharded run's matching phase, matching.sharding); None: the whole scope.
    shard: tuple[int, int] | None = None


def shard_column(kind: str, rules: RuleSet) -> str | None:
    """The record column a run of these rules can be split by without changing its outcome, or None.

    Every pairing and aggregation pass must compare it for equality (it is among their keys) and
    breaks must be classified by it (among the break keys), so no pass and no break can put two
    records with different values together; and no side may read it from another column
    (``field_map``), or the two sides would be split by different values. A three-way run splits by
    account only: its position check is per account. Where the account qualifies it is chosen, then
    the first of TEXT_KEY_FIELDS that does (e.g. a two-way run keyed on reference splits by it)."""
    common = set(rules.break_keys)
    for rule_pass in rules.passes:
        if isinstance(rule_pass, KeyedPass | AggregatePass):
            common &= set(rule_pass.keys)
    for mapping in rules.field_map.values():
        common -= set(mapping)
    preference = ("account",) if kind == "three_way" else ("account", *TEXT_KEY_FIELDS)
    return next((column for column in preference if column in common), None)


def shard_filter(alias: str, column: str | None) -> str:
    """SQL restricting ``alias`` (a record row) to the statement's shard (``%(shard_no)s`` of
    ``%(shard_count)s``) by a stable hash of ``column`` (from shard_column). Empty for an unsharded
    run. hashtext is int4; shifted by 2^31 it is never negative."""
    if column is None:
        return ""
    return f" AND mod(hashtext({alias}.{column})::bigint + 2147483648, %(shard_count)s) = %(shard_no)s"


def scope_ids_sql(side: str = "") -> str:
    """SQL for a run's frozen scope (one side's, or all sides') as one multirange, e.g. in
    ``r.id <@ {scope_ids_sql()}``.

    A scalar subquery, so PostgreSQL computes it once per statement; and computed (range_agg), so
    the value is an in-memory datum: compared directly with a stored, compressed multirange, every
    row's comparison would decompress it again (measured 140 µs a row at 10,000 ranges).

    The run is the statement's ``%(run)s``; ``side``: left, right or position (empty: all sides)."""
    if side not in ("", "left", "right", "position"):
        raise ValueError(f"not a side: {side!r}")
    side_filter = f" AND s.side = '{side}'" if side else ""
    return (
        "(SELECT coalesce(range_agg(ids), '{}'::int8multirange)"
        f" FROM reconciliation_run_scope s, unnest(s.record_ids) ids WHERE s.run_id = %(run)s{side_filter})"
    )


class _Clock:
    def __init__(self, timings: dict):
        self.timings = timings

    def __call__(self, phase: str):
        clock = self

        class _Phase:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                clock.timings[phase] = round(clock.timings.get(phase, 0) + time.perf_counter() - self.t0, 4)

        return _Phase()


def _execute(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _rows(sql: str, params=None) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _scalar(sql: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def reconcile(
    ctx: RunContext, rules: RuleSet, progress: Callable[[int, int], None] | None = None
) -> EngineResult:
    """Match the run's frozen scope by the rules, classify what is left, write all outcomes, prove
    conservation. Raises ConservationError (the caller's transaction then rolls back)."""
    result = EngineResult()
    clock = _Clock(result.timings)
    progress = progress or (lambda done, total: None)
    base = {
        "run": ctx.run_id,
        "tenant": ctx.tenant_id,
        "definition": ctx.definition_id,
        "date_from": ctx.date_from,
        "date_to": ctx.date_to,
        "shard_no": ctx.shard[0] if ctx.shard else None,
        "shard_count": ctx.shard[1] if ctx.shard else None,
    }

    # Sorts and hashes over a million rows stay in memory; LOCAL: this transaction only.
    _execute("SET LOCAL work_mem = '256MB'")
    _execute("SET LOCAL jit = off")
    sharded_by = shard_column(ctx.kind, rules) if ctx.shard else None
    if ctx.shard and sharded_by is None:
        raise ValueError(f"run {ctx.run_id}: these rules cannot be sharded (no shard column)")
    with clock("load"):
        frozen = _load_pools(base, rules, sharded_by)
        loaded = _scalar(
            "SELECT (SELECT count(*) FROM _l) + (SELECT count(*) FROM _r) + (SELECT count(*) FROM _p)"
        )
        # A shard's part of the scope is what it loaded (the finish task checks that the parts add
        # up to the frozen total); an unsharded run answers for every frozen id, loaded or not.
        total = loaded[0] if ctx.shard else frozen
        result.records_in_scope = total
        progress(0, total)

    done = 0
    left, right = "_l", "_r"
    with clock("decided"):
        # Records a final decision on their case excluded (write-off, not a break): out before any
        # pass, counted as excluded with the decision's reason and case id (matching.decisions).
        done = decisions.exclude_decided(base)
        if done:
            left, right = _shrink_pools(0, left, right)
            progress(done, total)
    rejected = _scalar("SELECT count(*) FROM _rejected")[0] > 0
    for rule_pass in rules.passes:
        with clock(f"pass:{rule_pass.name}"):
            if isinstance(rule_pass, ExcludePass):
                excluded = _run_exclusion(rule_pass, left, right)
                result.passes.append({"pass": rule_pass.name, "excluded": excluded})
                consumed = excluded
            elif isinstance(rule_pass, AggregatePass):
                groups, consumed = _run_grouping(rule_pass, left, right, rejected)
                result.passes.append({"pass": rule_pass.name, "groups": groups, "records": consumed})
            else:
                pairs, rounds = _run_pairing(rule_pass, left, right, rejected)
                result.passes.append({"pass": rule_pass.name, "matched_pairs": pairs, "rounds": rounds})
                consumed = 2 * pairs
            if consumed:
                left, right = _shrink_pools(rule_pass.index, left, right)
        done += consumed
        progress(done, total)

    with clock("breaks"):
        _classify_breaks(rules, base, left, right)
        if ctx.kind == "three_way":
            _position_check(base | {"as_of": ctx.as_of}, sharded_by)
    with clock("persist"):
        written = _persist(ctx, rules, base, left, right)
        first, last = _scalar(
            "SELECT min(match_id), max(match_id) FROM (SELECT match_id FROM _pairs"
            " UNION ALL SELECT match_id FROM _agg) m"
        )
        result.match_ids = (first, last) if first is not None else None
    with clock("conservation"):
        _conserve(result, base, written)
    progress(total, total)
    return result


# The pool columns a side's field_map may fill from another record column (the rest are read as is).
_MAPPED_COLUMNS = ("account", "instrument", "reference", "counterparty", "trade_date", "value_date")


def _pool_column(rules: RuleSet, side: str, name: str, alias: str) -> str:
    """SQL for pool column ``name`` of record ``alias`` as the side's pool holds it (field_map)."""
    mapped = rules.field_map.get(side, {})  # validated identifiers (passes.parse_field_map)
    if name not in _MAPPED_COLUMNS or name not in mapped:
        return f"{alias}.{name}"
    if name in TEXT_KEY_FIELDS:
        return f"coalesce(nullif({alias}.{name}, ''), {alias}.{mapped[name]})"
    return f"coalesce({alias}.{name}, {alias}.{mapped[name]})"


def _load_pools(base: dict, rules: RuleSet, sharded_by: str | None = None) -> int:
    """The pools, read from the records; returns how many records the frozen scope holds (all
    sides; a shard's part of them is what the pools hold)."""
    frozen = dict(_rows("SELECT side, records FROM reconciliation_run_scope WHERE run_id = %(run)s", base))

    def scope(side: str) -> str:
        # Each side's frozen scope read straight off the records scan: a binary search a row, where
        # joining a table of scope ids cost a hash join per side. A side with nothing frozen (a
        # two-way run's positions) is not scanned at all.
        if not frozen.get(side):
            return "WHERE false"
        return f"""WHERE r.id <@ {scope_ids_sql(side=side)} AND r.tenant_id = %(tenant)s
              AND r.business_date BETWEEN %(date_from)s AND %(date_to)s{shard_filter("r", sharded_by)}"""

    sign = "-" if rules.amount_sign == "opposite" else ""
    for table, side, amount in (("_l", "left", "r.amount"), ("_r", "right", f"{sign}r.amount")):

        def col(name, side=side):
            return _pool_column(rules, side, name, "r")

        _execute(
            f"""
            CREATE TEMP TABLE {table} ON COMMIT DROP AS
            SELECT r.id, r.business_date, r.source_id, r.external_id, r.kind,
                   {col("account")} AS account, {col("instrument")} AS instrument,
                   {col("reference")} AS reference, {col("counterparty")} AS counterparty, r.currency,
                   {amount} AS amount, r.amount AS raw_amount, r.quantity,
                   {col("trade_date")} AS trade_date, {col("value_date")} AS value_date
            FROM reconciliation_record r {scope(side)}
            """,
            base,
        )
        # Autovacuum never analyzes temporary tables; without statistics the planner guesses.
        _execute(f"ANALYZE {table}")
    _execute(
        f"""
        CREATE TEMP TABLE _p ON COMMIT DROP AS
        SELECT r.id, r.business_date, r.source_id, r.external_id, r.account, r.instrument, r.currency,
               r.quantity
        FROM reconciliation_record r {scope("position")}
        """,
        base,
    )
    # Match ids are drawn from the match table's own sequence up front, so match items can be
    # written with one INSERT … SELECT instead of a RETURNING round trip per match. The sequence is
    # named once: pg_get_serial_sequence() in the default would look it up for every row (~4 µs).
    sequence = _scalar("SELECT pg_get_serial_sequence('reconciliation_match', 'id')")[0].replace("'", "''")
    next_match_id = f"nextval('{sequence}'::regclass)"
    for ddl in (
        "CREATE TEMP TABLE _cand (l_id bigint, l_date date, r_id bigint, r_date date, d_amount numeric,"
        " d_quantity numeric, d_days integer, score numeric NOT NULL) ON COMMIT DROP",
        f"CREATE TEMP TABLE _pairs (match_id bigint DEFAULT {next_match_id}, pass_no integer, round integer,"
        " l_id bigint, l_date date, r_id bigint, r_date date, d_amount numeric, d_quantity numeric,"
        " d_days integer, score numeric, status text) ON COMMIT DROP",
        f"CREATE TEMP TABLE _agg (match_id bigint DEFAULT {next_match_id}, pass_no integer, l_ids bigint[],"
        " l_dates date[], r_ids bigint[], r_dates date[], score numeric, status text, differences jsonb)"
        " ON COMMIT DROP",
        "CREATE TEMP TABLE _aggm (match_id bigint, pass_no integer, status text, id bigint,"
        " business_date date, side text) ON COMMIT DROP",
        "CREATE TEMP TABLE _excl (id bigint, business_date date, side text, reason text) ON COMMIT DROP",
        "CREATE TEMP TABLE _brk (break_type text, l_id bigint, r_id bigint) ON COMMIT DROP",
        "CREATE TEMP TABLE _pos (account text, instrument text, opening numeric, opening_date date,"
        " traded numeric, closing numeric, closing_ids bigint[], closing_dates date[], balanced boolean)"
        " ON COMMIT DROP",
    ):
        _execute(ddl)
    # Few rows (analysts' decisions), found through the partial index on suggested/rejected matches.
    _execute(
        """
        CREATE TEMP TABLE _rejected ON COMMIT DROP AS
        SELECT array_agg(mi.record_id ORDER BY mi.record_id) AS ids
        FROM reconciliation_match m JOIN reconciliation_match_item mi ON mi.match_id = m.id
        WHERE m.tenant_id = %(tenant)s AND m.definition_id = %(definition)s AND m.status = 'rejected'
        GROUP BY m.id
        """,
        base,
    )
    return sum(frozen.values())


def _run_exclusion(rule_pass: ExcludePass, left: str, right: str) -> int:
    excluded = 0
    for side, pool in (("left", left), ("right", right)):
        if side in rule_pass.sides:
            sql, params = rule_pass.exclusion_sql(pool, side)
            excluded += _execute(sql, params)
    return excluded


_ASSIGN_ROUND = """
INSERT INTO _pairs (pass_no, round, l_id, l_date, r_id, r_date, d_amount, d_quantity, d_days, score, status)
SELECT %(pass_no)s, %(round)s, l_id, l_date, r_id, r_date, d_amount, d_quantity, d_days, score,
       CASE WHEN score >= %(auto)s THEN 'active' ELSE 'suggested' END
FROM (
    SELECT c.*,
        row_number() OVER (PARTITION BY l_id ORDER BY score DESC, d_amount NULLS LAST,
                           d_quantity NULLS LAST, d_days NULLS LAST, r_id) AS best_for_left,
        row_number() OVER (PARTITION BY r_id ORDER BY score DESC, d_amount NULLS LAST,
                           d_quantity NULLS LAST, d_days NULLS LAST, l_id) AS best_for_right
    FROM _cand c
) ranked
WHERE best_for_left = 1 AND best_for_right = 1
"""


def _run_pairing(rule_pass: KeyedPass, left: str, right: str, rejected: bool) -> tuple[int, int]:
    """Candidates by the pass's one statement, then a one-to-one choice: each round accepts the pairs
    that are each other's best (highest score, smallest differences, then lowest id), and drops the
    candidates that touch them. The best remaining candidate is always mutual best, so every round
    makes progress; exact data takes one round. Candidates below the pass's suggestion threshold,
    and pairs an analyst rejected, are dropped before the choice."""
    _execute("TRUNCATE _cand")
    for statement in rule_pass.prepare_sql(left, right):
        _execute(statement)
    sql, params = rule_pass.candidates_sql(left, right)
    remaining = _execute(sql, params)
    if remaining and rule_pass.suggest_threshold > 0:
        remaining -= _execute("DELETE FROM _cand WHERE score < %s", [rule_pass.suggest_threshold])
    if remaining and rejected:
        remaining -= _execute(
            "DELETE FROM _cand c USING _rejected x"
            " WHERE x.ids = ARRAY[least(c.l_id, c.r_id), greatest(c.l_id, c.r_id)]"
        )
    if not remaining:
        return 0, 0
    _execute("ANALYZE _cand")
    pairs, rounds = _accept_unambiguous(rule_pass, remaining), 1
    remaining -= pairs
    while remaining:
        rounds += 1
        key = {"pass_no": rule_pass.index, "round": rounds, "auto": rule_pass.auto_threshold}
        accepted = _execute(_ASSIGN_ROUND, key)
        pairs += accepted
        if accepted == remaining:  # every candidate was taken: nothing left to choose between
            break
        for column in ("l_id", "r_id"):
            remaining -= _execute(
                f"DELETE FROM _cand c USING _pairs p WHERE p.pass_no = %(pass_no)s AND p.round = %(round)s"
                f" AND c.{column} = p.{column}",
                key,
            )
    return pairs, rounds


_ACCEPT_UNAMBIGUOUS = """
INSERT INTO _pairs (pass_no, round, l_id, l_date, r_id, r_date, d_amount, d_quantity, d_days, score, status)
SELECT %(pass_no)s, 0, l_id, l_date, r_id, r_date, d_amount, d_quantity, d_days, score,
       CASE WHEN score >= %(auto)s THEN 'active' ELSE 'suggested' END
FROM _cand c
WHERE NOT EXISTS (SELECT 1 FROM _cand_l x WHERE x.l_id = c.l_id)
  AND NOT EXISTS (SELECT 1 FROM _cand_r x WHERE x.r_id = c.r_id)
"""


def _accept_unambiguous(rule_pass: KeyedPass, candidates: int) -> int:
    """Accept at once every candidate whose left and right records have no other candidate (each is
    trivially the other's best: the rounds would take it too), with two hash aggregates instead of
    the rounds' sorts; leave only the contested candidates in ``_cand``. Exact data is all of it."""
    for side in ("l", "r"):
        _execute(
            f"CREATE TEMP TABLE _cand_{side} ON COMMIT DROP AS"
            f" SELECT {side}_id FROM _cand GROUP BY {side}_id HAVING count(*) > 1"
        )
    accepted = _execute(_ACCEPT_UNAMBIGUOUS, {"pass_no": rule_pass.index, "auto": rule_pass.auto_threshold})
    if accepted and accepted < candidates:
        _execute(
            "CREATE TEMP TABLE _contested ON COMMIT DROP AS SELECT * FROM _cand c"
            " WHERE EXISTS (SELECT 1 FROM _cand_l x WHERE x.l_id = c.l_id)"
            " OR EXISTS (SELECT 1 FROM _cand_r x WHERE x.r_id = c.r_id)"
        )
        _execute("TRUNCATE _cand")
        _execute("INSERT INTO _cand SELECT * FROM _contested")
        _execute("DROP TABLE _contested")
        _execute("ANALYZE _cand")
    _execute("DROP TABLE _cand_l, _cand_r")
    return accepted


def _run_grouping(rule_pass: AggregatePass, left: str, right: str, rejected: bool) -> tuple[int, int]:
    """An aggregation pass: its one statement fills ``_agg``; the members go to ``_aggm``, one row
    each, for the pools, the items and the conservation proof. Returns (groups, records)."""
    sql, params = rule_pass.groups_sql(left, right, rejected=rejected)
    groups = _execute(sql, params)
    if not groups:
        return 0, 0
    members = _execute(
        """
        INSERT INTO _aggm (match_id, pass_no, status, id, business_date, side)
        SELECT a.match_id, a.pass_no, a.status, m.id, m.business_date, 'left'
        FROM _agg a, unnest(a.l_ids, a.l_dates) AS m(id, business_date) WHERE a.pass_no = %(p)s
        UNION ALL
        SELECT a.match_id, a.pass_no, a.status, m.id, m.business_date, 'right'
        FROM _agg a, unnest(a.r_ids, a.r_dates) AS m(id, business_date) WHERE a.pass_no = %(p)s
        """,
        {"p": rule_pass.index},
    )
    return groups, members


def _shrink_pools(pass_no: int, left: str, right: str) -> tuple[str, str]:
    """The next pass's pools: this pass's pools minus what it matched, suggested or excluded."""
    new_left, new_right = f"_l{pass_no}", f"_r{pass_no}"
    for new, old, column in ((new_left, left, "l_id"), (new_right, right, "r_id")):
        _execute(
            f"""
            CREATE TEMP TABLE {new} ON COMMIT DROP AS
            SELECT * FROM {old} o
            WHERE NOT EXISTS (SELECT 1 FROM _pairs p WHERE p.pass_no = %(p)s AND p.{column} = o.id)
              AND NOT EXISTS (SELECT 1 FROM _aggm a WHERE a.pass_no = %(p)s AND a.id = o.id)
              AND NOT EXISTS (SELECT 1 FROM _excl e WHERE e.id = o.id)
            """,
            {"p": pass_no},
        )
        _execute(f"ANALYZE {new}")
    return new_left, new_right


def _classify_breaks(rules: RuleSet, base: dict, left: str, right: str) -> None:
    """What no pass matched becomes a break, each record in exactly one:

    1. duplicate: an unmatched record identical (break keys, currency, amount, quantity, value date)
       to another record of its side in scope that was matched or has a lower id, or to an active
       record of its side in the window that an active match of the definition holds (an earlier
       run's match: out of this run's scope, yet the copy is still a copy — _duplicates_of_matched);
    2. amount / quantity / date mismatch: the remaining records paired one-to-one by break keys and
       currency (in id order), labelled by the first comparison of the classifying pass they fail;
    3. missing_right / missing_left: the rest.
    """
    keys = rules.break_keys
    key_eq = " AND ".join(f"f.{k} = u.{k}" for k in keys)
    key_nonblank = "".join(f" AND u.{k} <> ''" for k in keys if k in TEXT_KEY_FIELDS)
    for side, pool, full in (("left", left, "_l"), ("right", right, "_r")):
        column = "l_id" if side == "left" else "r_id"
        _execute(
            f"""
            INSERT INTO _brk (break_type, {column})
            SELECT DISTINCT 'duplicate', u.id
            FROM {pool} u JOIN {full} f
              ON {key_eq} AND f.currency = u.currency AND f.raw_amount = u.raw_amount
             AND f.quantity IS NOT DISTINCT FROM u.quantity AND f.value_date IS NOT DISTINCT FROM u.value_date
             AND f.id <> u.id
            WHERE (f.id < u.id OR NOT EXISTS (SELECT 1 FROM {pool} x WHERE x.id = f.id)){key_nonblank}
            """
        )
    _duplicates_of_matched(rules, base, left, right)
    classify = rules.classify_pass
    params: dict = {}
    amount_ok = classify.amount.sql("amount", params, "c_amount") if classify.amount else "true"
    quantity_ok = classify.quantity.sql("quantity", params, "c_quantity") if classify.quantity else "true"
    if classify.date is not None:
        params["c_days"] = classify.date.window_days
        date_ok = f"abs(l.{classify.date.field} - r.{classify.date.field}) <= %(c_days)s"
    else:
        date_ok = "true"
    partition = ", ".join([*keys, "currency"])
    nonblank = " AND ".join([f"{k} <> ''" for k in keys if k in TEXT_KEY_FIELDS] + ["currency <> ''"])
    ranked = """
        SELECT u.*, row_number() OVER (PARTITION BY {partition} ORDER BY id) AS rn FROM {pool} u
        WHERE {nonblank} AND NOT EXISTS (SELECT 1 FROM _brk b WHERE b.{column} = u.id)
    """
    _execute(
        f"""
        INSERT INTO _brk (break_type, l_id, r_id)
        SELECT t, l_id, r_id FROM (
            SELECT l.id AS l_id, r.id AS r_id,
                CASE WHEN NOT coalesce({amount_ok}, false) THEN 'amount_mismatch'
                     WHEN NOT coalesce({quantity_ok}, false) THEN 'quantity_mismatch'
                     WHEN NOT coalesce({date_ok}, false) THEN 'date_mismatch' END AS t
            FROM ({ranked.format(partition=partition, pool=left, nonblank=nonblank, column="l_id")}) l
            JOIN ({ranked.format(partition=partition, pool=right, nonblank=nonblank, column="r_id")}) r
              ON {" AND ".join(f"l.{k} = r.{k}" for k in keys)} AND l.currency = r.currency AND l.rn = r.rn
        ) paired
        WHERE t IS NOT NULL
        """,
        params,
    )
    _execute(
        f"""
        INSERT INTO _brk (break_type, l_id)
        SELECT 'missing_right', u.id FROM {left} u WHERE NOT EXISTS (SELECT 1 FROM _brk b WHERE b.l_id = u.id)
        """
    )
    _execute(
        f"""
        INSERT INTO _brk (break_type, r_id)
        SELECT 'missing_left', u.id FROM {right} u WHERE NOT EXISTS (SELECT 1 FROM _brk b WHERE b.r_id = u.id)
        """
    )


def _duplicates_of_matched(rules: RuleSet, base: dict, left: str, right: str) -> None:
    """Leftovers (not yet a duplicate) identical to an active record of their side's sources in
    the run's window that an active match of the definition holds: a copy of something an earlier
    run matched stays a duplicate run after run, rather than turning into a missing record (and its
    case into another break type) once its sibling is out of scope.

    Two steps, so that neither the window's records nor the definition's match items (every match
    it ever made) are read whole into a hash: the records identical to a leftover (identity as in
    the in-scope rule, on the columns as each side's pool holds them: field_map) are found by one
    scan of the window's months, both sides at once, hashed against the few leftovers; only those
    candidates are then looked up in ``match_item_one_active_match`` (tenant, definition, record,
    business date). The break keys include the shard column (engine.shard_column), so a shard only
    ever finds siblings of its own part: sharded and unsharded runs agree."""
    keys = list(dict.fromkeys([*rules.break_keys, "value_date"]))  # value_date may be a break key
    key_nonblank = "".join(f" AND {k} <> ''" for k in rules.break_keys if k in TEXT_KEY_FIELDS)
    leftovers = " UNION ALL ".join(
        f"SELECT '{side}' AS side, id, {', '.join(keys)}, currency, raw_amount, quantity FROM {pool}"
        f" WHERE NOT EXISTS (SELECT 1 FROM _brk b WHERE b.{column} = {pool}.id){key_nonblank}"
        for side, pool, column in (("left", left, "l_id"), ("right", right, "r_id"))
    )

    if not _execute(f"CREATE TEMP TABLE _dup_u ON COMMIT DROP AS {leftovers}"):
        _execute("DROP TABLE _dup_u")
        return
    # Analyzed, so the planner hashes the leftovers and scans the records once (over a UNION ALL
    # of the pools it guessed their keys' spread and hashed the two million records instead).
    _execute("ANALYZE _dup_u")
    sources = dict(
        _rows(
            "SELECT side, array_agg(source_id) FROM reconciliation_definitionsource"
            " WHERE definition_id = %(definition)s AND side IN ('left', 'right') GROUP BY side",
            base,
        )
    )
    # The sides' sources as constants: the planner estimates the records read from the column's
    # statistics, and f's side is known without a join.
    params = base | {"left_sources": sources.get("left", []), "right_sources": sources.get("right", [])}
    on_left = "f.source_id = ANY(%(left_sources)s::bigint[])"

    def sibling(k: str) -> str:
        """Key ``k`` of record f as its side's pool would hold it."""
        by_side = {side: _pool_column(rules, side, k, "f") for side in ("left", "right")}
        if by_side["left"] == by_side["right"]:
            return by_side["left"]
        return f"CASE WHEN {on_left} THEN {by_side['left']} ELSE {by_side['right']} END"

    same = [f"{sibling(k)} = u.{k}" for k in rules.break_keys]
    same.append(f"{sibling('value_date')} IS NOT DISTINCT FROM u.value_date")
    _execute(
        f"""
        CREATE TEMP TABLE _dup_cand ON COMMIT DROP AS
        SELECT u.side, u.id AS u_id, f.id AS f_id, f.business_date AS f_date
        FROM _dup_u u
        JOIN reconciliation_record f
          ON CASE WHEN {on_left} THEN 'left' ELSE 'right' END = u.side AND {" AND ".join(same)}
         AND f.currency = u.currency AND f.amount = u.raw_amount
         AND f.quantity IS NOT DISTINCT FROM u.quantity AND f.id <> u.id
        WHERE f.tenant_id = %(tenant)s AND f.status = 'active'
          AND f.source_id = ANY(%(left_sources)s::bigint[] || %(right_sources)s::bigint[])
          AND f.business_date BETWEEN %(date_from)s AND %(date_to)s
        """,
        params,
    )
    _execute("ANALYZE _dup_cand")
    _execute(
        """
        INSERT INTO _brk (break_type, l_id, r_id)
        SELECT DISTINCT 'duplicate', CASE WHEN c.side = 'left' THEN c.u_id END,
               CASE WHEN c.side = 'right' THEN c.u_id END
        FROM _dup_cand c
        WHERE EXISTS (
            SELECT 1 FROM reconciliation_match_item mi
            WHERE mi.tenant_id = %(tenant)s AND mi.definition_id = %(definition)s AND mi.record_id = c.f_id
              AND mi.business_date = c.f_date AND mi.is_active AND mi.side = c.side)
        """,
        base,
    )
    _execute("DROP TABLE _dup_u, _dup_cand")


def _position_check(params: dict, sharded_by: str | None = None) -> None:
    """Three-way: per account and instrument, opening position + traded quantity = closing position.

    Closing: the positions dated the as-of date. Opening: the latest positions dated before it within
    the window (none: zero, and every trade of the window counts). Traded: the trade flow frozen by
    fetch_trades over (opening date, as-of]. Positions of one account/instrument/day are summed.
    An aggregate outcome: it consumes no record (the positions are excluded, counted once).
    """
    _execute(
        f"""
        INSERT INTO _pos (account, instrument, opening, opening_date, traded, closing, closing_ids,
                          closing_dates, balanced)
        WITH closing AS (
            SELECT account, instrument, sum(coalesce(quantity, 0)) AS qty, array_agg(id ORDER BY id) AS ids,
                   array_agg(business_date ORDER BY id) AS dates
            FROM _p WHERE business_date = %(as_of)s GROUP BY 1, 2
        ), opening_day AS (
            SELECT account, instrument, max(business_date) AS day
            FROM _p WHERE business_date < %(as_of)s GROUP BY 1, 2
        ), opening AS (
            SELECT p.account, p.instrument, d.day, sum(coalesce(p.quantity, 0)) AS qty
            FROM _p p JOIN opening_day d USING (account, instrument)
            WHERE p.business_date = d.day GROUP BY 1, 2, 3
        ), flow AS (
            SELECT f.account, f.instrument, f.business_date, f.quantity
            FROM reconciliation_run_trade_flow f
            WHERE f.run_id = %(run)s AND f.business_date <= %(as_of)s{shard_filter("f", sharded_by)}
        ), traded AS (
            SELECT f.account, f.instrument, sum(f.quantity) AS qty
            FROM flow f LEFT JOIN opening o USING (account, instrument)
            WHERE f.business_date > coalesce(o.day, %(date_from)s - 1)
            GROUP BY 1, 2
        ), keys AS (
            SELECT account, instrument FROM closing UNION SELECT account, instrument FROM opening
            UNION SELECT account, instrument FROM traded
        ), checked AS (
            SELECT k.account, k.instrument, coalesce(o.qty, 0) AS opening, o.day AS opening_date,
                   coalesce(t.qty, 0) AS traded, coalesce(c.qty, 0) AS closing,
                   coalesce(c.ids, '{{}}') AS ids, coalesce(c.dates, '{{}}') AS dates
            FROM keys k
            LEFT JOIN opening o USING (account, instrument)
            LEFT JOIN closing c USING (account, instrument)
            LEFT JOIN traded t USING (account, instrument)
        )
        SELECT account, instrument, opening, opening_date, traded, closing, ids, dates,
               opening + traded = closing
        FROM checked
        """,
        params,
    )
    _execute("INSERT INTO _brk (break_type) SELECT 'position_break' FROM _pos WHERE NOT balanced")


# The natural key of a record for fingerprints: source, external id, business date (not the version:
# an amendment of the same item must land on the same case).
_NK = "({t}.source_id::text || ':' || {t}.external_id || ':' || {t}.business_date::text)"

_RECORD_JSON = """jsonb_build_object('id', {t}.id, 'source_id', {t}.source_id,
    'external_id', {t}.external_id, 'business_date', {t}.business_date, 'kind', {t}.kind,
    'account', {t}.account, 'instrument', {t}.instrument,
    'reference', {t}.reference, 'counterparty', {t}.counterparty, 'currency', {t}.currency,
    'amount', {t}.raw_amount::text, 'quantity', {t}.quantity::text, 'trade_date', {t}.trade_date,
    'value_date', {t}.value_date) || coalesce((
    -- which extractor gave the reference (ingestion/references.py), for the case page; read off the
    -- record for the few break rows rather than carried through every pool
    SELECT jsonb_build_object('reference_from', x.attributes->>'reference_from')
    FROM reconciliation_record x
    WHERE x.id = {t}.id AND x.business_date = {t}.business_date AND x.attributes ? 'reference_from'
    ), '{{}}'::jsonb)"""


def _persist(ctx: RunContext, rules: RuleSet, base: dict, left: str, right: str) -> dict:
    """Write matches, match items, breaks and exclusions from the temporary tables; returns the
    number of record slots each wrote (checked against the engine's own counts in _conserve).
    ``left``/``right``: the last passes' pools, where every record of a break is."""
    names = [p.name for p in rules.passes]
    params = base | {
        "names": names,
        "rule": ctx.rule_label,
        "classify": f"pass:{rules.classify_pass.name}",
        "def_text": str(ctx.definition_id),
    }
    written = {}
    _expire_pending_suggestions(params)
    _execute(
        """
        INSERT INTO reconciliation_match (id, tenant_id, definition_id, run_id, pass_no, pass_name, status,
                                          run_outcome, score, differences, created_at)
        SELECT p.match_id, %(tenant)s, %(definition)s, %(run)s, p.pass_no, (%(names)s::text[])[p.pass_no],
               p.status, p.status, round(p.score, 6),
               CASE WHEN p.d_amount <> 0 OR p.d_quantity <> 0 OR p.d_days <> 0 THEN jsonb_strip_nulls(
                   jsonb_build_object('amount_abs_delta', nullif(p.d_amount, 0)::text,
                                      'quantity_abs_delta', nullif(p.d_quantity, 0)::text,
                                      'date_days', nullif(p.d_days, 0))) END,
               now()
        FROM _pairs p
        UNION ALL
        SELECT a.match_id, %(tenant)s, %(definition)s, %(run)s, a.pass_no, (%(names)s::text[])[a.pass_no],
               a.status, a.status, round(a.score, 6), a.differences, now()
        FROM _agg a
        """,
        params,
    )
    # A suggestion's items are inactive: it holds no record (they stay open items) until accepted.
    # Every left item, then every right one: each side's record ids arrive in the order they were
    # loaded, so the one-active-match index grows at two points instead of taking them at random
    # (measured 15 % faster at a million pairs than writing a pair's two items side by side).
    written["match_items"] = _execute(
        """
        INSERT INTO reconciliation_match_item (match_id, record_id, business_date, side, tenant_id,
                                               definition_id, is_active)
        SELECT match_id, l_id, l_date, 'left', %(tenant)s, %(definition)s, status = 'active' FROM _pairs
        UNION ALL
        SELECT match_id, r_id, r_date, 'right', %(tenant)s, %(definition)s, status = 'active' FROM _pairs
        UNION ALL
        SELECT match_id, id, business_date, side, %(tenant)s, %(definition)s, status = 'active' FROM _aggm
        """,
        params,
    )
    _execute(
        """
        INSERT INTO _excl (id, business_date, side, reason)
        SELECT id, business_date, 'position', %(reason)s FROM _p
        """,
        {"reason": POSITION_EXCLUSION_REASON},
    )
    written["excluded"] = _execute(
        """
        INSERT INTO reconciliation_run_exclusion (run_id, record_id, business_date, side, reason)
        SELECT %(run)s, id, business_date, side, reason FROM _excl
        """,
        params,
    )
    written["in_breaks"] = _persist_breaks(params, left, right)
    _persist_position_breaks(params)
    return written


def _expire_pending_suggestions(params: dict) -> None:
    """Earlier runs' suggestions still pending for records this run sees again are expired: this run
    proposes afresh, so one pending suggestion exists per record."""
    _execute(
        """
        UPDATE reconciliation_match m SET status = 'expired', decided_at = now(), decided_by = 'run '
            || %(run)s::text
        WHERE m.tenant_id = %(tenant)s AND m.definition_id = %(definition)s AND m.status = 'suggested'
          AND m.run_id <> %(run)s
          AND EXISTS (
              SELECT 1 FROM reconciliation_match_item mi
              JOIN (SELECT id, business_date FROM _l UNION ALL SELECT id, business_date FROM _r) s
                ON s.id = mi.record_id AND s.business_date = mi.business_date
              WHERE mi.match_id = m.id)
        """,
        params,
    )


def _persist_breaks(params: dict, left: str, right: str) -> int:
    lk, rk = _NK.format(t="l"), _NK.format(t="r")
    sorted_keys = (
        f"CASE WHEN l.id IS NULL THEN {rk} WHEN r.id IS NULL THEN {lk} "
        f'WHEN {lk} COLLATE "C" < {rk} COLLATE "C" THEN {lk} || chr(31) || {rk} '
        f"ELSE {rk} || chr(31) || {lk} END"
    )
    # The record slots this statement wrote (not the run's: a sharded run writes its breaks per shard).
    return _scalar(
        f"""
        WITH written AS (
        INSERT INTO reconciliation_break (tenant_id, definition_id, run_id, break_type, fingerprint,
            record_ids, record_dates, currency, amount_at_stake, reference, account, instrument,
            differences, snapshot, rule)
        SELECT %(tenant)s, %(definition)s, %(run)s, b.break_type,
            encode(sha256(convert_to(%(def_text)s || chr(31) || {sorted_keys}, 'UTF8')), 'hex'),
            array_remove(ARRAY[l.id, r.id], NULL),
            array_remove(ARRAY[l.business_date, r.business_date], NULL),
            coalesce(l.currency, r.currency),
            CASE WHEN b.break_type = 'amount_mismatch' THEN abs(l.amount - r.amount)
                 ELSE abs(coalesce(l.raw_amount, r.raw_amount)) END,
            coalesce(nullif(l.reference, ''), r.reference, ''),
            coalesce(nullif(l.account, ''), r.account, ''),
            coalesce(nullif(l.instrument, ''), r.instrument, ''),
            CASE WHEN b.break_type = 'duplicate' THEN jsonb_build_object('duplicate_on',
                     CASE WHEN l.id IS NULL THEN 'right' ELSE 'left' END)
                 WHEN l.id IS NULL THEN jsonb_build_object('missing_side', 'left')
                 WHEN r.id IS NULL THEN jsonb_build_object('missing_side', 'right')
                 ELSE jsonb_strip_nulls(jsonb_build_object(
                     'amount', CASE WHEN l.amount IS DISTINCT FROM r.amount THEN jsonb_build_object(
                         'left', l.raw_amount::text, 'right', r.raw_amount::text,
                         'delta', (l.amount - r.amount)::text) END,
                     'quantity', CASE WHEN l.quantity IS DISTINCT FROM r.quantity THEN jsonb_build_object(
                         'left', l.quantity::text, 'right', r.quantity::text,
                         'delta', (l.quantity - r.quantity)::text) END,
                     'value_date', CASE WHEN l.value_date IS DISTINCT FROM r.value_date
                         THEN jsonb_build_object(
                         'left', l.value_date, 'right', r.value_date,
                         'days', l.value_date - r.value_date) END))
            END,
            jsonb_build_object(
                'left', CASE WHEN l.id IS NULL THEN '[]'::jsonb
                             ELSE jsonb_build_array({_RECORD_JSON.format(t="l")}) END,
                'right', CASE WHEN r.id IS NULL THEN '[]'::jsonb
                              ELSE jsonb_build_array({_RECORD_JSON.format(t="r")}) END),
            %(rule)s || '/' || CASE WHEN b.break_type IN ('missing_left', 'missing_right') THEN 'unmatched'
                                    WHEN b.break_type = 'duplicate' THEN 'duplicate'
                                    ELSE %(classify)s END
        -- the unmatched pools (a few rows), not the whole scope: breaks are made of what is left
        FROM _brk b LEFT JOIN {left} l ON l.id = b.l_id LEFT JOIN {right} r ON r.id = b.r_id
        WHERE b.break_type <> 'position_break'
        RETURNING cardinality(record_ids) AS n
        )
        SELECT coalesce(sum(n), 0) FROM written
        """,
        params,
    )[0]


def _persist_position_breaks(params: dict) -> None:
    _execute(
        """
        INSERT INTO reconciliation_break (tenant_id, definition_id, run_id, break_type, fingerprint,
            record_ids, record_dates, currency, amount_at_stake, reference, account, instrument,
            differences, snapshot, rule)
        SELECT %(tenant)s, %(definition)s, %(run)s, 'position_break',
            encode(sha256(convert_to(%(def_text)s || chr(31) || 'position:' || account || ':' || instrument,
                                     'UTF8')), 'hex'),
            closing_ids, closing_dates, '', NULL, '', account, instrument,
            jsonb_build_object('quantity', jsonb_build_object(
                'opening', opening::text, 'opening_date', opening_date, 'traded', traded::text,
                'expected_closing', (opening + traded)::text, 'closing', closing::text,
                'delta', (closing - opening - traded)::text)),
            jsonb_build_object('left', '[]'::jsonb, 'right', '[]'::jsonb, 'position', jsonb_build_object(
                'account', account, 'instrument', instrument, 'opening', opening::text,
                'opening_date', opening_date, 'traded', traded::text, 'closing', closing::text,
                'closing_record_ids', to_jsonb(closing_ids))),
            %(rule)s || '/position'
        FROM _pos WHERE NOT balanced
        """,
        params,
    )


def _conserve(result: EngineResult, base: dict, written: dict) -> None:
    """Records in scope = matched + suggested + in breaks + excluded, each record exactly once —
    counted from what the engine wrote, against the frozen scope, not from its own tallies."""
    in_scope = result.records_in_scope
    # Every outcome's record ids, each flagged by whether the frozen multirange holds it: the ids
    # outside are strays; the distinct ids inside must be every frozen record (else unaccounted),
    # each in one outcome only (else the extra slots are double counted). A sort for the distinct
    # count (0.5 s at 2M ids) where a hash aggregate of a count per id cost 1.7 s. OFFSET 0 keeps
    # the subquery whole, so the scope is computed once, not once per FILTER.
    stray, placed, accounted = _scalar(
        f"""
        SELECT count(*) FILTER (WHERE NOT inside), count(*) FILTER (WHERE inside),
               count(DISTINCT id) FILTER (WHERE inside)
        FROM (
            SELECT id, id <@ {scope_ids_sql()} AS inside FROM (
                SELECT l_id AS id FROM _pairs UNION ALL SELECT r_id FROM _pairs
                UNION ALL SELECT id FROM _aggm
                UNION ALL SELECT l_id FROM _brk WHERE l_id IS NOT NULL
                UNION ALL SELECT r_id FROM _brk WHERE r_id IS NOT NULL
                UNION ALL SELECT id FROM _excl
            ) outcome
            OFFSET 0
        ) flagged
        """,
        base,
    )
    doubled = placed - accounted
    unaccounted = in_scope - accounted
    # Records per outcome: a pair holds two, a group its members; matched (active) or suggested.
    matched_records, suggested_records, matches = _scalar(
        """
        SELECT coalesce(sum(n) FILTER (WHERE status = 'active'), 0),
               coalesce(sum(n) FILTER (WHERE status = 'suggested'), 0),
               count(DISTINCT match_id) FILTER (WHERE status = 'active')
        FROM (SELECT match_id, status, 2 AS n FROM _pairs
              UNION ALL SELECT match_id, status, 1 FROM _aggm) m
        """
    )
    result.matches = matches
    result.matched = matched_records
    result.suggested = suggested_records
    result.excluded = _scalar("SELECT count(*) FROM _excl")[0]
    result.in_breaks = _scalar(
        "SELECT count(l_id) + count(r_id) FROM _brk WHERE break_type <> 'position_break'"
    )[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT break_type, count(*) FROM _brk GROUP BY 1 ORDER BY 1")
        result.breaks_by_type = dict(cursor.fetchall())
    result.by_kind = _outcomes_by_kind()
    totals_ok = in_scope == result.matched + result.suggested + result.in_breaks + result.excluded
    written_ok = written == {
        "match_items": result.matched + result.suggested,
        "excluded": result.excluded,
        "in_breaks": result.in_breaks,
    }
    result.conservation = {
        "in_scope": in_scope,
        "matched": result.matched,
        "suggested": result.suggested,
        "in_breaks": result.in_breaks,
        "excluded": result.excluded,
        "accounted": accounted,
        "unaccounted": unaccounted,
        "stray": stray,
        "double_counted": doubled,
        "written": written,
        "ok": bool(totals_ok and written_ok and not unaccounted and not stray and not doubled),
    }
    if not result.conservation["ok"]:
        raise ConservationError(result.conservation)


_MATCH_OUTCOME = "CASE WHEN p.status = 'active' THEN 'matched' ELSE 'suggested' END"


def _outcomes_by_kind() -> dict:
    """{(record kind, outcome): n} for the metrics. A side almost always holds one kind, and then the
    per-side counts are enough; only a mixed side pays for joining outcomes back to its records."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT 'left', kind FROM (SELECT DISTINCT kind FROM _l) k
            UNION ALL SELECT 'right', kind FROM (SELECT DISTINCT kind FROM _r) k
            """
        )
        kinds: dict = {}
        for side, kind in cursor.fetchall():
            kinds.setdefault(side, []).append(kind)
        if any(len(v) > 1 for v in kinds.values()):
            cursor.execute(
                f"""
                SELECT kind, outcome, count(*) FROM (
                    SELECT l.kind, {_MATCH_OUTCOME} AS outcome FROM _pairs p JOIN _l l ON l.id = p.l_id
                    UNION ALL SELECT r.kind, {_MATCH_OUTCOME} FROM _pairs p JOIN _r r ON r.id = p.r_id
                    UNION ALL SELECT coalesce(l.kind, r.kind), {_MATCH_OUTCOME}
                        FROM _aggm p LEFT JOIN _l l ON l.id = p.id LEFT JOIN _r r ON r.id = p.id
                    UNION ALL SELECT l.kind, 'break' FROM _brk b JOIN _l l ON l.id = b.l_id
                    UNION ALL SELECT r.kind, 'break' FROM _brk b JOIN _r r ON r.id = b.r_id
                    UNION ALL SELECT coalesce(l.kind, r.kind), 'excluded'
                        FROM _excl e LEFT JOIN _l l ON l.id = e.id LEFT JOIN _r r ON r.id = e.id
                        WHERE e.side <> 'position'
                ) x GROUP BY 1, 2
                """
            )
            counts = {(k, o): n for k, o, n in cursor.fetchall()}
        else:
            cursor.execute(
                f"""
                SELECT 'left', {_MATCH_OUTCOME}, count(*) FROM _pairs p GROUP BY 2
                UNION ALL SELECT 'right', {_MATCH_OUTCOME}, count(*) FROM _pairs p GROUP BY 2
                UNION ALL SELECT side, {_MATCH_OUTCOME}, count(*) FROM _aggm p GROUP BY 1, 2
                UNION ALL SELECT 'left', 'break', count(l_id) FROM _brk
                UNION ALL SELECT 'right', 'break', count(r_id) FROM _brk
                UNION ALL SELECT side, 'excluded', count(*) FROM _excl WHERE side <> 'position' GROUP BY side
                """
            )
            counts = {}
            for side, outcome, n in cursor.fetchall():
                for kind in kinds.get(side, []):
                    counts[(kind, outcome)] = counts.get((kind, outcome), 0) + n
        cursor.execute("SELECT count(*) FROM _excl WHERE side = 'position'")
        positions = cursor.fetchone()[0]
    if positions:
        counts[("position", "excluded")] = positions
    return {key: n for key, n in counts.items() if n}
