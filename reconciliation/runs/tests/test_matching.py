"""The rules and the engine, run in-process through the same services the chord calls.

Boundaries exactly at and just past each limit, negative amounts, reversals, currencies, duplicates,
pass ordering, conservation — checked on what PostgreSQL stored (matches, items, breaks)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tests.factories import member
from reconciliation.matching import approval, engine
from reconciliation.matching.passes import parse_rules
from reconciliation.runs import services
from reconciliation.runs.models import Break, Match, MatchItem, Run, RunStatus
from reconciliation.runs.tests.factories import (
    ACTOR,
    AS_OF,
    TenantFactory,
    amend,
    definition,
    records,
    reverse,
    source_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def reconcile(defn, **kwargs) -> Run:
    run = services.run_start(
        tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF, dispatch=False, **kwargs
    )
    return services.run_execute_inline(run)


def outcome_of(run: Run) -> dict:
    """{record id: "matched:<pass>" | <break type> | "excluded"} for every record in the run."""
    out = {}
    for item in MatchItem.objects.filter(match__run_id=run.pk).select_related("match"):
        out[item.record_id] = f"matched:{item.match.pass_name}"
    for brk in Break.objects.filter(run=run).exclude(break_type="position_break"):
        for rid in brk.record_ids:
            assert rid not in out, f"record {rid} in two outcomes"
            out[rid] = brk.break_type
    with connection.cursor() as cursor:
        cursor.execute("SELECT record_id FROM reconciliation_run_exclusion WHERE run_id = %s", [run.pk])
        for (rid,) in cursor.fetchall():
            assert rid not in out
            out[rid] = "excluded"
    return out


def two_way(tenant=None, passes=None, **rules):
    tenant = tenant or TenantFactory()
    rules = {"passes": passes or [{"name": "exact_ref", "type": "exact", "keys": ["reference"]}], **rules}
    defn = definition(tenant, rules=rules)
    return defn, source_of(defn, "left"), source_of(defn, "right")


TOLERANCE = {"name": "tol", "type": "tolerance", "keys": ["reference"]}


def test_exact_pass_matches_and_the_rest_are_missing_on_one_side_with_conservation_stored():
    defn, left, right = two_way()
    l1, l2 = records(left, {"reference": "A", "amount": "100.00"}, {"reference": "B", "amount": "5"})
    r1, r2 = records(right, {"reference": "A", "amount": "100.00"}, {"reference": "C", "amount": "7"})
    run = reconcile(defn)
    assert run.status == RunStatus.COMPLETED, run.error
    assert outcome_of(run) == {
        l1: "matched:exact_ref",
        r1: "matched:exact_ref",
        l2: "missing_right",
        r2: "missing_left",
    }
    assert (run.records_in_scope, run.matched, run.in_breaks, run.excluded, run.matches) == (4, 2, 2, 0, 1)
    assert run.breaks_by_type == {"missing_left": 1, "missing_right": 1}
    assert run.conservation["ok"] is True
    assert run.conservation | {"written": None} == {
        "in_scope": 4,
        "matched": 2,
        "suggested": 0,
        "in_breaks": 2,
        "excluded": 0,
        "accounted": 4,
        "unaccounted": 0,
        "stray": 0,
        "double_counted": 0,
        "written": None,
        "ok": True,
        "decided": {"excluded": {}, "force_matched_outside_scope": 0},  # docs/exceptions.md, decisions
    }
    assert run.rule_version.version == 1
    assert run.progress_done == run.progress_total == 4
    assert {"load", "pass:exact_ref", "breaks", "persist", "conservation", "cases", "compute"} <= set(
        run.timings
    )
    assert run.attempts == 1


@pytest.mark.parametrize(
    ("tolerance", "left", "right", "expected"),
    [
        ({"absolute": "0.05"}, "100.00", "100.05", "matched:tol"),  # exactly at the limit: inclusive
        ({"absolute": "0.05"}, "100.00", "100.050001", "amount_mismatch"),  # just past it
        ({"absolute": "0.05"}, "100.05", "100.00", "matched:tol"),  # either direction
        ({"percent": "1"}, "200.00", "202.00", "matched:tol"),  # 1% of |left| = 2.00, at the limit
        ({"percent": "1"}, "200.00", "202.000001", "amount_mismatch"),
        ({"absolute": "0.01", "percent": "1"}, "200.00", "201.50", "matched:tol"),  # any: within the percent
        ({"absolute": "0.01", "percent": "1", "combine": "all"}, "200.00", "201.50", "amount_mismatch"),
        ({"absolute": "0.01", "percent": "1", "combine": "all"}, "200.00", "200.01", "matched:tol"),
        ({"absolute": "0.05"}, "-100.00", "-100.05", "matched:tol"),  # negative amounts
        ({"absolute": "0.05"}, "-100.00", "-100.051", "amount_mismatch"),
        ({"percent": "1"}, "-200.00", "-202.00", "matched:tol"),  # percent of |left|
        ({"percent": "1"}, "-200.00", "-202.01", "amount_mismatch"),
        ({"absolute": "0.05"}, "-100.00", "100.00", "amount_mismatch"),  # a sign is not a rounding error
    ],
)
def test_amount_tolerance_boundaries_are_inclusive_and_exact(tolerance, left, right, expected):
    defn, lsrc, rsrc = two_way(passes=[TOLERANCE | {"amount": tolerance}])
    (lid,) = records(lsrc, {"reference": "A", "amount": left})
    (rid,) = records(rsrc, {"reference": "A", "amount": right})
    run = reconcile(defn)
    got = outcome_of(run)
    assert got[lid] == got[rid] == expected
    if expected == "amount_mismatch":
        brk = Break.objects.get(run=run)
        delta = Decimal(left) - Decimal(right)
        assert Decimal(brk.differences["amount"]["delta"]) == delta
        assert brk.amount_at_stake == abs(delta)


@pytest.mark.parametrize(("days", "expected"), [(2, "matched:tol"), (3, "date_mismatch")])
def test_date_window_is_inclusive(days, expected):
    defn, lsrc, rsrc = two_way(passes=[TOLERANCE | {"date": {"field": "value_date", "window_days": 2}}])
    (lid,) = records(lsrc, {"reference": "A", "amount": "10", "value_date": AS_OF})
    (rid,) = records(rsrc, {"reference": "A", "amount": "10", "value_date": AS_OF + timedelta(days=days)})
    got = outcome_of(reconcile(defn))
    assert got[lid] == got[rid] == expected


def test_opposite_sign_convention_matches_a_debit_with_its_credit():
    defn, lsrc, rsrc = two_way(amount_sign="opposite")
    (l1,) = records(lsrc, {"reference": "A", "amount": "100.00"})
    (r1,) = records(rsrc, {"reference": "A", "amount": "-100.00"})
    assert outcome_of(reconcile(defn)) == {l1: "matched:exact_ref", r1: "matched:exact_ref"}


def test_reversed_and_superseded_records_are_out_of_scope_and_an_amendment_is_in():
    defn, lsrc, rsrc = two_way()
    l1, l2 = records(lsrc, {"reference": "A", "amount": "100"}, {"reference": "B", "amount": "-40"})
    (r1, r2) = records(rsrc, {"reference": "A", "amount": "99"}, {"reference": "B", "amount": "-40"})
    reverse(l2)  # its batch was reversed: never reconciled again
    r1v2 = amend(rsrc, r1, amount=Decimal("100"))
    run = reconcile(defn)
    assert outcome_of(run) == {l1: "matched:exact_ref", r1v2: "matched:exact_ref", r2: "missing_left"}
    assert run.records_in_scope == 3


def test_different_currencies_never_match_even_with_equal_keys_and_amounts():
    defn, lsrc, rsrc = two_way(passes=[TOLERANCE | {"amount": {"absolute": "1000"}}])
    (l1,) = records(lsrc, {"reference": "A", "amount": "100", "currency": "EUR"})
    (r1,) = records(rsrc, {"reference": "A", "amount": "100", "currency": "USD"})
    assert outcome_of(reconcile(defn)) == {l1: "missing_right", r1: "missing_left"}


def test_duplicates_pair_one_to_one_and_the_extra_copy_is_a_duplicate_break():
    defn, lsrc, rsrc = two_way()
    row = {"reference": "A", "amount": "100", "value_date": AS_OF}
    l1, l2, l3 = records(lsrc, row, row, row)
    r1, r2 = records(rsrc, row, row)
    # Blank references are not evidence: two blank-reference lines are not duplicates of each other.
    b1, b2 = records(lsrc, {"reference": "", "amount": "5"}, {"reference": "", "amount": "5"})
    # A copy on a side whose counterpart never arrived: the first is missing, the copy a duplicate.
    m1, m2 = records(rsrc, {"reference": "Z", "amount": "9"}, {"reference": "Z", "amount": "9"})
    run = reconcile(defn)
    got = outcome_of(run)
    assert got[l1] == got[l2] == got[r1] == got[r2] == "matched:exact_ref"
    assert got[l3] == "duplicate"
    assert (got[b1], got[b2]) == ("missing_right", "missing_right")
    assert (got[m1], got[m2]) == ("missing_left", "duplicate")
    assert MatchItem.objects.filter(match__run_id=run.pk).count() == 4
    assert run.breaks_by_type == {"duplicate": 2, "missing_left": 1, "missing_right": 2}


def test_passes_run_in_order_and_each_sees_only_what_the_earlier_ones_left():
    exact = {"name": "exact_ref", "type": "exact", "keys": ["reference"]}
    by_account = {"name": "by_account", "type": "tolerance", "keys": ["account"], "amount": {"absolute": "1"}}
    tenant = TenantFactory()
    for order, expected_pass in (([exact, by_account], "exact_ref"), ([by_account, exact], "by_account")):
        defn, lsrc, rsrc = two_way(tenant, passes=order)
        (l1, l2) = records(
            lsrc,
            {"reference": "A", "account": "X", "amount": "100"},
            {"reference": "B", "account": "Y", "amount": "50"},
        )
        (r1, r2) = records(
            rsrc,
            {"reference": "A", "account": "X", "amount": "100"},
            {"reference": "Q", "account": "Y", "amount": "50.50"},
        )
        got = outcome_of(reconcile(defn))
        assert got[l1] == got[r1] == f"matched:{expected_pass}"
        assert got[l2] == got[r2] == "matched:by_account"  # only the second kind of pass can pair these


def test_a_tolerance_pass_prefers_the_closest_candidate_one_to_one():
    defn, lsrc, rsrc = two_way(passes=[TOLERANCE | {"amount": {"absolute": "1"}}])
    l1, l2 = records(lsrc, {"reference": "A", "amount": "100.00"}, {"reference": "A", "amount": "100.60"})
    r1, r2 = records(rsrc, {"reference": "A", "amount": "100.50"}, {"reference": "A", "amount": "100.05"})
    run = reconcile(defn)
    pairs = {
        tuple(sorted(m.items.values_list("record_id", flat=True)))
        for m in Match.objects.filter(run_id=run.pk).prefetch_related("items")
    }
    assert pairs == {tuple(sorted((l1, r2))), tuple(sorted((l2, r1)))}
    match = Match.objects.filter(run_id=run.pk).order_by("id").first()
    assert match.differences is not None
    assert "amount_abs_delta" in match.differences


def test_exclude_pass_counts_records_as_excluded():
    passes = [
        {
            "name": "fees",
            "type": "exclude",
            "side": "left",
            "where": [{"field": "amount", "op": "eq", "value": "0"}],
        },
        {"name": "exact_ref", "type": "exact", "keys": ["reference"]},
    ]
    defn, lsrc, rsrc = two_way(passes=passes)
    l1, l2 = records(lsrc, {"reference": "A", "amount": "0"}, {"reference": "B", "amount": "3"})
    (r1,) = records(rsrc, {"reference": "B", "amount": "3"})
    run = reconcile(defn)
    assert outcome_of(run) == {l1: "excluded", l2: "matched:exact_ref", r1: "matched:exact_ref"}
    assert (run.excluded, run.records_in_scope) == (1, 3)


def test_three_way_quantity_mismatch_and_position_break():
    tenant = TenantFactory()
    defn = definition(tenant, kind="three_way")
    pos, trades, setts = (source_of(defn, s) for s in ("position", "left", "right"))
    yesterday = AS_OF - timedelta(days=1)
    records(
        pos,
        {"account": "ACC", "instrument": "ISIN1", "quantity": "100", "business_date": yesterday},
        {"account": "ACC", "instrument": "ISIN1", "quantity": "150"},  # 100 + 50 traded: balances
        {"account": "ACC", "instrument": "ISIN2", "quantity": "10", "business_date": yesterday},
        {"account": "ACC", "instrument": "ISIN2", "quantity": "25"},
    )  # 10 + 10 traded != 25: a break
    t1, t2, t3 = records(
        trades,
        {"reference": "T1", "account": "ACC", "instrument": "ISIN1", "quantity": "50", "amount": "5000"},
        {"reference": "T2", "account": "ACC", "instrument": "ISIN2", "quantity": "10", "amount": "900"},
        {
            "reference": "T3",
            "account": "ACC",
            "instrument": "ISIN2",
            "quantity": "0",
            "amount": "0",
            "business_date": AS_OF - timedelta(days=3),
        },  # before the opening position: not in the flow
    )
    s1, s2 = records(
        setts,
        {"reference": "T1", "account": "ACC", "instrument": "ISIN1", "quantity": "50", "amount": "5000"},
        {"reference": "T2", "account": "ACC", "instrument": "ISIN2", "quantity": "9", "amount": "900"},
    )
    run = reconcile(defn)
    got = outcome_of(run)
    assert got[t1] == got[s1] == "matched:exact_ref"
    assert got[t2] == got[s2] == "quantity_mismatch"
    assert got[t3] == "missing_right"
    assert sum(1 for v in got.values() if v == "excluded") == 4  # the positions, counted once each
    assert run.breaks_by_type == {"missing_right": 1, "position_break": 1, "quantity_mismatch": 1}
    position = Break.objects.get(run=run, break_type="position_break")
    assert (position.account, position.instrument) == ("ACC", "ISIN2")
    assert position.differences["quantity"] | {"opening_date": None} == {
        "opening": "10.00000000",
        "opening_date": None,
        "traded": "10.00000000",
        "expected_closing": "20.00000000",
        "closing": "25.00000000",
        "delta": "5.00000000",
    }
    # An aggregate outcome: it consumes no record; conservation holds without it.
    assert run.records_in_scope == run.matched + run.in_breaks + run.excluded == 2 + 3 + 4


def test_a_run_that_fails_conservation_ends_failed_and_writes_nothing(monkeypatch):
    defn, lsrc, rsrc = two_way()
    records(lsrc, {"reference": "A", "amount": "1"}, {"reference": "B", "amount": "2"})
    records(rsrc, {"reference": "A", "amount": "1"})
    real = engine._classify_breaks

    def lose_one_record(rules, base, left, right):  # a bug that silently drops a break
        real(rules, base, left, right)
        engine._execute("DELETE FROM _brk WHERE break_type = 'missing_right'")

    monkeypatch.setattr(engine, "_classify_breaks", lose_one_record)
    run = reconcile(defn)
    assert run.status == RunStatus.FAILED
    assert run.error_code == "conservation"
    # The engine's failed proof is kept; the run accounts for its scope as unprocessed (rolled back).
    assert run.conservation["failed_proof"]["unaccounted"] == 1
    assert run.conservation["failed_proof"]["ok"] is False
    proof = run.conservation
    assert (proof["in_scope"], proof["unprocessed"], proof["ok"]) == (3, 3, True)
    assert run.conservation["unprocessed_reason"].startswith("conservation: ")
    assert not Match.objects.filter(run_id=run.pk).exists()  # rolled back with the compute
    assert not Break.objects.filter(run=run).exists()
    from exceptions.models import Case

    failed_case = Case.objects.get(definition_id=defn.pk, break_type="run_failed")
    assert "conservation" in failed_case.differences["error"]


def test_one_active_match_per_record_is_a_constraint():
    defn, lsrc, rsrc = two_way()
    (l1,) = records(lsrc, {"reference": "A", "amount": "1"})
    (_r1,) = records(rsrc, {"reference": "A", "amount": "1"})
    run = reconcile(defn)
    item = MatchItem.objects.get(record_id=l1)
    other = Match.objects.create(
        tenant_id=run.tenant_id,
        definition_id=defn.pk,
        run_id=run.pk,
        pass_no=1,
        pass_name="x",
        created_at=run.created_at,
    )
    with pytest.raises(IntegrityError, match="match_item_one_active_match"):
        MatchItem.objects.create(
            match=other,
            record_id=l1,
            business_date=item.business_date,
            side="left",
            tenant_id=run.tenant_id,
            definition_id=defn.pk,
        )


def test_open_items_a_second_run_reconsiders_only_what_is_unmatched():
    defn, lsrc, rsrc = two_way()
    (_l1, l2) = records(lsrc, {"reference": "A", "amount": "1"}, {"reference": "B", "amount": "2"})
    (_r1,) = records(rsrc, {"reference": "A", "amount": "1"})
    first = reconcile(defn)
    assert first.records_in_scope == 3
    (r2,) = records(rsrc, {"reference": "B", "amount": "2"})
    second = reconcile(defn)
    assert second.records_in_scope == 2  # l1/r1 stay matched; l2 retried, r2 new
    assert outcome_of(second) == {l2: "matched:exact_ref", r2: "matched:exact_ref"}


def test_rules_are_validated_and_versioned_with_an_audit_event():
    from jfintech.audit.models import AuditEvent

    defn, _, _ = two_way()
    for bad, message in [
        ({"passes": []}, "non-empty"),
        ({"passes": [TOLERANCE | {"amount": {"absolute": 0.05}}]}, "not floats"),
        (
            {"passes": [{"name": "x", "type": "exact", "keys": ["reference"], "amount": {"absolute": "1"}}]},
            "exact",
        ),
        ({"passes": [{"name": "x", "type": "telepathy", "keys": ["reference"]}]}, "type"),
        ({"passes": [{"name": "x", "type": "exact", "keys": ["amount; drop table"]}]}, "keys"),
    ]:
        with pytest.raises(ApplicationError, match=message):
            services.rules_publish(definition=defn, actor=ACTOR, rules=bad)
    new_rules = {"passes": [TOLERANCE | {"amount": {"absolute": "0.10"}}]}
    v2 = services.rules_publish(definition=defn, actor=ACTOR, rules=new_rules, comment="looser")
    assert v2.version == 2
    assert (
        services.rules_publish(definition=defn, actor=ACTOR, rules=new_rules) == v2
    )  # no change, no version
    assert AuditEvent.objects.filter(action="recon_rules.published", object_id=str(v2.pk)).count() == 1
    parse_rules(v2.rules)
    records(source_of(defn, "left"), {"reference": "A", "amount": "1"})
    assert v2.status == "pending"  # four-eyes (matching.approval): runs keep v1 until approved
    assert reconcile(defn).rule_version.version == 1
    approver = member(defn.tenant, role="approver")
    approval.rule_version_decide(
        tenant=defn.tenant, actor=Actor.for_user(approver), user=approver, version_id=v2.pk, approve=True
    )
    assert reconcile(defn).rule_version == v2


def test_a_second_start_while_a_run_is_in_flight_is_refused():
    defn, _, _ = two_way()
    first = services.run_start(
        tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", dispatch=False
    )
    with pytest.raises(ApplicationError) as exc:
        services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", dispatch=False)
    assert exc.value.code == "run_in_progress"
    assert exc.value.extra["run_id"] == first.pk


def test_a_repeated_request_key_returns_the_run_it_started():
    defn, _, _ = two_way()
    first = services.run_start(
        tenant=defn.tenant,
        actor=ACTOR,
        definition=defn,
        trigger="beat",
        dispatch=False,
        request_key="beat:abc",
    )
    again = services.run_start(
        tenant=defn.tenant,
        actor=ACTOR,
        definition=defn,
        trigger="beat",
        dispatch=False,
        request_key="beat:abc",
    )
    assert again.pk == first.pk


def test_field_map_compares_a_side_s_own_column_in_place_of_a_key():
    # Trades carry the trade id in external_id; the custodian's settlements quote it as reference.
    defn, lsrc, rsrc = two_way(field_map={"left": {"reference": "external_id"}})
    (l1,) = records(lsrc, {"external_id": "TR-1", "reference": "", "amount": "10"})
    (r1,) = records(rsrc, {"reference": "TR-1", "amount": "10"})
    assert outcome_of(reconcile(defn)) == {l1: "matched:exact_ref", r1: "matched:exact_ref"}
    with pytest.raises(ApplicationError, match="field_map"):
        parse_rules({"passes": [{"name": "x", "type": "exact", "keys": ["reference"]}],
                     "field_map": {"left": {"reference": "value_date"}}})  # fmt: skip


def test_copies_of_records_an_earlier_run_matched_are_duplicates_compared_as_the_pools_map_them():
    # The left side's reference is read from its instrument where blank: the copy's sibling, out of
    # scope in an active match, is compared by the mapped value too (each side by its own map).
    # value_date is a break key as well as part of the identity.
    defn, lsrc, rsrc = two_way(
        field_map={"left": {"reference": "instrument"}}, break_keys=["reference", "value_date"]
    )
    left_row = {"reference": "", "instrument": "TR-1", "amount": "10", "value_date": AS_OF}
    l1, l1_copy, l2 = records(
        lsrc, left_row, left_row, {"reference": "", "instrument": "TR-2", "amount": "5", "value_date": AS_OF}
    )
    r1, r2, r2_copy = records(
        rsrc,
        {"reference": "TR-1", "amount": "10", "value_date": AS_OF},
        *[{"reference": "TR-2", "amount": "5", "value_date": AS_OF}] * 2,
    )
    first = outcome_of(reconcile(defn))
    assert {rid: first[rid] for rid in (l1, l2, r1, r2)} == dict.fromkeys(
        (l1, l2, r1, r2), "matched:exact_ref"
    )
    assert (first[l1_copy], first[r2_copy]) == ("duplicate", "duplicate")
    second = reconcile(defn)
    assert outcome_of(second) == {l1_copy: "duplicate", r2_copy: "duplicate"}
    assert (second.records_in_scope, second.in_breaks, second.conservation["ok"]) == (2, 2, True)


def _started(defn) -> Run:
    return services.run_start(
        tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF, dispatch=False
    )


def _fetch_all(run: Run) -> None:
    for side in ("left", "right"):
        services.run_fetch_side(run_id=run.pk, side=side)


def test_the_frozen_scope_is_what_the_run_reconciles_not_what_arrives_after_the_fetch():
    defn, left, right = two_way()
    (l1,) = records(left, {"reference": "A", "amount": "1"})
    (r1,) = records(right, {"reference": "A", "amount": "1"})
    first = _started(defn)
    _fetch_all(first)
    # Arrives while the run is matching: in its window, and it would match, but it was not frozen.
    late_l, late_r = records(left, {"reference": "L", "amount": "2"}) + records(
        right, {"reference": "L", "amount": "2"}
    )
    assert services.run_compute(run_id=first.pk) == "completed"
    first.refresh_from_db()
    assert outcome_of(first) == {l1: "matched:exact_ref", r1: "matched:exact_ref"}
    assert first.records_in_scope == 2
    assert first.conservation["ok"], first.conservation
    # The next run's scope is what the first left open: the late pair, and only it.
    second = reconcile(defn)
    assert outcome_of(second) == {late_l: "matched:exact_ref", late_r: "matched:exact_ref"}
    assert second.records_in_scope == 2


def test_open_items_scattered_between_matched_records_are_the_next_runs_scope():
    defn, left, right = two_way()
    ids = records(left, *({"reference": f"R{i}", "amount": "1"} for i in range(10)))
    # Every other left record has its counterpart: the open items are five ranges of one id each.
    records(right, *({"reference": f"R{i}", "amount": "1"} for i in range(0, 10, 2)))
    first = reconcile(defn)
    assert first.matched == 10
    assert first.in_breaks == 5
    second = reconcile(defn)
    assert set(outcome_of(second)) == set(ids[1::2])
    assert second.records_in_scope == 5
    assert second.conservation["ok"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT records, (SELECT count(*) FROM unnest(record_ids)) FROM reconciliation_run_scope"
            " WHERE run_id = %s AND side = 'left'",
            [second.pk],
        )
        assert cursor.fetchone() == (5, 5)


def test_a_frozen_record_that_disappears_before_the_compute_fails_the_run_loudly():
    defn, left, right = two_way()
    (l1,) = records(left, {"reference": "A", "amount": "1"})
    (gone,) = records(left, {"reference": "B", "amount": "1"})
    records(right, {"reference": "A", "amount": "1"})
    run = _started(defn)
    _fetch_all(run)
    with connection.cursor() as cursor:  # nothing in the product deletes a record: a DBA's mistake
        cursor.execute("DELETE FROM reconciliation_record WHERE id = %s", [gone])
    assert services.run_compute(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.conservation["failed_proof"]["in_scope"] == 3
    assert run.conservation["failed_proof"]["unaccounted"] == 1
    assert not run.conservation["failed_proof"]["ok"]
    assert (run.conservation["in_scope"], run.conservation["unprocessed"]) == (3, 3)
    assert not MatchItem.objects.filter(record_id=l1).exists()  # nothing of the failed compute stays
