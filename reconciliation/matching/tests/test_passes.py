"""Fuzzy and aggregation passes, scores and thresholds: each cardinality, each boundary, checked on what
PostgreSQL stored (matches, items, breaks) and on the run's conservation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from jfintech.common.errors import ApplicationError
from reconciliation.matching.passes import parse_rules
from reconciliation.matching.tests.factories import (
    ACTOR,
    AS_OF,
    groups_of,
    outcome_of,
    reconcile,
    records,
    two_way,
)
from reconciliation.runs import services
from reconciliation.runs.models import Match, MatchItem

pytestmark = pytest.mark.django_db(transaction=True)

EXACT = {"name": "exact_ref", "type": "exact", "keys": ["reference"]}


def similarity(a: str, b: str) -> Decimal:
    with connection.cursor() as cursor:
        cursor.execute("SELECT jf_trgm_similarity(%s, %s), similarity(%s, %s)", [a, b, a, b])
        exact, approximate = cursor.fetchone()
    assert abs(float(exact) - approximate) < 1e-6  # the exact score is pg_trgm's similarity
    return exact


def test_exact_similarity_is_pg_trgm_similarity_as_an_exact_fraction():
    assert similarity("ACME Corp", "acme corporation") == Decimal("0.5")
    assert similarity("abc", "abd") == Decimal("0.33333333333333333333")  # 2 shared of 6
    assert similarity("INV-2024-00123", "INV 2024 00123") == 1  # punctuation and case are not words
    assert similarity("abc", "xyz") == 0


# --- fuzzy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("minimum", "expected"), [("0.5", "matched:fuzzy"), ("0.500001", "missing_right")])
def test_fuzzy_threshold_is_inclusive_and_exact(minimum, expected):
    defn, left, right = two_way(
        [EXACT, {"name": "fuzzy", "type": "fuzzy", "min_similarity": minimum}], break_keys=["account"]
    )
    (lid,) = records(left, {"reference": "ACME Corp", "amount": "10", "account": "A1"})
    (rid,) = records(right, {"reference": "acme corporation", "amount": "10", "account": "A2"})
    run = reconcile(defn)
    assert run.conservation["ok"], run.conservation
    got = outcome_of(run)
    assert got[lid] == expected
    if expected.startswith("matched"):
        assert got[rid] == expected
        assert Match.objects.get(run_id=run.pk).score == Decimal("0.5")


def test_fuzzy_runs_after_exact_and_only_on_what_it_left():
    defn, left, right = two_way([EXACT, {"name": "fuzzy", "type": "fuzzy", "min_similarity": "0.6"}])
    l1, l2, l3 = records(
        left,
        {"reference": "PAY-778812", "amount": "100.00"},
        {"reference": "Invoice 2024-0042 ACME", "amount": "250.00"},
        {"reference": "Invoice 2024-0042 ACME", "amount": "999.00"},  # similar, another amount
    )
    r1, r2 = records(
        right,
        {"reference": "PAY-778812", "amount": "100.00"},
        {"reference": "INVOICE 20240042 ACME GMBH", "amount": "250.00"},
    )
    run = reconcile(defn)
    assert outcome_of(run) == {
        l1: "matched:exact_ref",
        r1: "matched:exact_ref",
        l2: "matched:fuzzy",
        r2: "matched:fuzzy",
        l3: "missing_right",
    }
    assert run.conservation["ok"]


def test_fuzzy_combines_with_amount_tolerance_and_date_window():
    fuzzy = {
        "name": "fuzzy",
        "type": "fuzzy",
        "min_similarity": "0.4",
        "amount": {"absolute": "0.50"},
        "date": {"field": "value_date", "window_days": 2},
    }
    defn, left, right = two_way([EXACT, fuzzy], break_keys=["account"])
    day = AS_OF
    ok_l, far_l, late_l = records(
        left,
        {"reference": "SEPA ACME 0001", "amount": "100.00", "value_date": day, "account": "1"},
        {"reference": "SEPA ACME 0002", "amount": "200.00", "value_date": day, "account": "2"},
        {"reference": "SEPA ACME 0003", "amount": "300.00", "value_date": day, "account": "3"},
    )
    ok_r, far_r, late_r = records(
        right,
        {
            "reference": "ACME SEPA 0001",
            "amount": "100.50",
            "value_date": day.replace(day=22),
            "account": "4",
        },
        {"reference": "ACME SEPA 0002", "amount": "200.51", "value_date": day, "account": "5"},
        {
            "reference": "ACME SEPA 0003",
            "amount": "300.00",
            "value_date": day.replace(day=23),
            "account": "6",
        },
    )
    got = outcome_of(reconcile(defn))
    assert got[ok_l] == got[ok_r] == "matched:fuzzy"  # at the amount and the date limits: inclusive
    assert got[far_l] == "missing_right"
    assert got[far_r] == "missing_left"
    assert got[late_l] == "missing_right"
    assert got[late_r] == "missing_left"


def test_fuzzy_on_the_reference_alone_uses_the_trigram_index_path():
    fuzzy = {"name": "fuzzy", "type": "fuzzy", "min_similarity": "0.5", "amount": False}
    defn, left, right = two_way([EXACT, fuzzy], break_keys=["account"])
    (lid,) = records(left, {"reference": "Globex Corporation", "amount": "1", "account": "1"})
    (rid, other) = records(
        right,
        {"reference": "GLOBEX CORP", "amount": "7", "account": "2"},
        {"reference": "Initech", "amount": "1", "account": "3"},
    )
    got = outcome_of(reconcile(defn))
    assert got[lid] == got[rid] == "matched:fuzzy"
    assert got[other] == "missing_left"


def test_the_higher_similarity_wins_a_contested_record():
    defn, left, right = two_way([EXACT, {"name": "fuzzy", "type": "fuzzy", "min_similarity": "0.3"}])
    (lid,) = records(left, {"reference": "ACME Corporation Ltd", "amount": "5"})
    close, far = records(
        right, {"reference": "ACME Corporation", "amount": "5"}, {"reference": "ACME Corp", "amount": "5"}
    )
    got = outcome_of(reconcile(defn))
    assert got[lid] == got[close] == "matched:fuzzy"
    assert got[far] == "missing_left"


def test_fuzzy_never_matches_across_currencies_and_refuses_reference_as_a_key():
    defn, left, right = two_way([EXACT, {"name": "fuzzy", "type": "fuzzy", "min_similarity": "0.3"}])
    (lid,) = records(left, {"reference": "ACME Corp", "amount": "5", "currency": "EUR"})
    (rid,) = records(right, {"reference": "ACME Corp.", "amount": "5", "currency": "USD"})
    got = outcome_of(reconcile(defn))
    assert (got[lid], got[rid]) == ("missing_right", "missing_left")
    with pytest.raises(ApplicationError, match="fuzzy pass compares the reference"):
        parse_rules({"passes": [{"name": "f", "type": "fuzzy", "keys": ["reference"]}]})
    with pytest.raises(ApplicationError, match="min_similarity"):
        parse_rules({"passes": [{"name": "f", "type": "fuzzy", "min_similarity": "0"}]})


# --- scores and thresholds --------------------------------------------------------------------


def test_scores_split_candidates_into_matched_suggested_and_breaks():
    fuzzy = {
        "name": "fuzzy",
        "type": "fuzzy",
        "min_similarity": "0.3",
        "auto_threshold": "0.9",
        "suggest_threshold": "0.5",
    }
    defn, left, right = two_way([EXACT, fuzzy], break_keys=["account"])
    sure_l, maybe_l, weak_l = records(
        left,
        {"reference": "INV-2024-00123", "amount": "10", "account": "1"},
        {"reference": "ACME Corp", "amount": "20", "account": "2"},
        {"reference": "abc", "amount": "30", "account": "3"},
    )
    sure_r, maybe_r, weak_r = records(
        right,
        {"reference": "INV 2024 00123", "amount": "10", "account": "4"},  # similarity 1
        {"reference": "acme corporation", "amount": "20", "account": "5"},  # 0.5: exactly the floor
        {"reference": "abd", "amount": "30", "account": "6"},  # 1/3: below it
    )
    run = reconcile(defn)
    got = outcome_of(run)
    assert got[sure_l] == got[sure_r] == "matched:fuzzy"
    assert got[maybe_l] == got[maybe_r] == "suggested:fuzzy"
    assert (got[weak_l], got[weak_r]) == ("missing_right", "missing_left")
    assert (run.matched, run.suggested, run.in_breaks, run.matches) == (2, 2, 2, 1)
    assert run.conservation["ok"]
    assert run.conservation["suggested"] == 2
    suggestion = Match.objects.get(run_id=run.pk, status="suggested")
    assert suggestion.score == Decimal("0.5")
    # A suggestion holds no record: its items are inactive, so the records stay open items.
    assert not MatchItem.objects.filter(match=suggestion, is_active=True).exists()


def test_tolerance_pass_scores_by_the_share_of_tolerance_used():
    tol = {
        "name": "tol",
        "type": "tolerance",
        "keys": ["reference"],
        "amount": {"absolute": "1.00"},
        "auto_threshold": "0.75",
        "suggest_threshold": "0.5",
    }
    defn, left, right = two_way([tol])
    half_l, edge_l = records(left, {"reference": "A", "amount": "100"}, {"reference": "B", "amount": "100"})
    half_r, edge_r = records(
        right, {"reference": "A", "amount": "100.50"}, {"reference": "B", "amount": "101"}
    )
    run = reconcile(defn)
    got = outcome_of(run)
    assert got[half_l] == got[half_r] == "matched:tol"  # half the tolerance used: score 0.75
    assert got[edge_l] == got[edge_r] == "suggested:tol"  # all of it: score 0.5
    assert sorted(Match.objects.filter(run_id=run.pk).values_list("score", flat=True)) == [
        Decimal("0.5"),
        Decimal("0.75"),
    ]


def test_thresholds_are_validated():
    for bad in ({"auto_threshold": "1.1"}, {"auto_threshold": "0.5", "suggest_threshold": "0.6"}):
        with pytest.raises(ApplicationError):
            parse_rules({"passes": [EXACT | bad]})
    with pytest.raises(ApplicationError, match="not floats"):
        parse_rules({"passes": [EXACT | {"auto_threshold": 0.9}]})


# --- aggregation ----------------------------------------------------------------------------------


def aggregate(cardinality: str, **extra) -> dict:
    return {"name": "agg", "type": "aggregate", "cardinality": cardinality, "keys": ["reference"]} | extra


def test_one_to_many_groups_the_right_side_by_key_and_compares_sums():
    defn, left, right = two_way([EXACT, aggregate("one_to_many")], break_keys=["account"])
    (batch,) = records(left, {"reference": "BATCH-7", "amount": "300.00", "account": "L"})
    parts = records(
        right,
        {"reference": "BATCH-7", "amount": "100.00", "account": "R1"},
        {"reference": "BATCH-7", "amount": "150.00", "account": "R2"},
        {"reference": "BATCH-7", "amount": "50.00", "account": "R3"},
    )
    run = reconcile(defn)
    assert groups_of(run) == {"agg": [sorted([batch, *parts])]}
    match = Match.objects.get(run_id=run.pk)
    assert match.differences["cardinality"] == "1:3"
    assert match.differences["amount_left_sum"] == match.differences["amount_right_sum"]
    assert (run.matched, run.matches, run.in_breaks) == (4, 1, 0)
    assert run.conservation["ok"]


def test_many_to_one_is_the_mirror_image():
    defn, left, right = two_way([EXACT, aggregate("many_to_one")], break_keys=["account"])
    parts = records(
        left,
        {"reference": "PAYROLL", "amount": "1000.00", "account": "1"},
        {"reference": "PAYROLL", "amount": "2500.50", "account": "2"},
    )
    (total,) = records(right, {"reference": "PAYROLL", "amount": "3500.50", "account": "3"})
    run = reconcile(defn)
    assert groups_of(run) == {"agg": [sorted([*parts, total])]}
    assert Match.objects.get(run_id=run.pk).differences["cardinality"] == "2:1"


def test_many_to_many_matches_groups_on_both_sides():
    defn, left, right = two_way([EXACT, aggregate("many_to_many")], break_keys=["account"])
    lefts = records(
        left,
        {"reference": "NET-1", "amount": "100", "account": "1"},
        {"reference": "NET-1", "amount": "50", "account": "2"},
        {"reference": "NET-2", "amount": "10", "account": "3"},
    )
    rights = records(
        right,
        {"reference": "NET-1", "amount": "120", "account": "4"},
        {"reference": "NET-1", "amount": "30", "account": "5"},
        {"reference": "NET-2", "amount": "4", "account": "6"},
        {"reference": "NET-2", "amount": "6", "account": "7"},
    )
    run = reconcile(defn)
    assert groups_of(run) == {
        "agg": sorted([sorted(lefts[:2] + rights[:2]), sorted([lefts[2], *rights[2:]])])
    }
    assert sorted(Match.objects.filter(run_id=run.pk).values_list("differences__cardinality", flat=True)) == [
        "1:2",
        "2:2",
    ]
    assert run.conservation["ok"]
    assert run.matched == 7


@pytest.mark.parametrize(("right_total", "expected"), [("299.99", True), ("299.98", False)])
def test_group_sums_compare_within_an_inclusive_tolerance(right_total, expected):
    defn, left, right = two_way(
        [EXACT, aggregate("one_to_many", amount={"absolute": "0.01"})], break_keys=["account"]
    )
    (batch,) = records(left, {"reference": "B", "amount": "300.00", "account": "1"})
    records(
        right,
        {"reference": "B", "amount": "100.00", "account": "2"},
        {"reference": "B", "amount": str(Decimal(right_total) - 100), "account": "3"},
    )
    got = outcome_of(reconcile(defn))
    assert (got[batch] == "matched:agg") is expected


def test_a_group_with_a_stray_member_or_another_currency_does_not_match():
    defn, left, right = two_way([EXACT, aggregate("one_to_many")], break_keys=["account"])
    lid, eur_l = records(
        left,
        {"reference": "B1", "amount": "300", "account": "1"},
        {"reference": "B2", "amount": "30", "account": "2", "currency": "EUR"},
    )
    stray = records(
        right,
        {"reference": "B1", "amount": "100", "account": "3"},
        {"reference": "B1", "amount": "200", "account": "4"},
        {"reference": "B1", "amount": "5", "account": "5"},  # does not belong: the sum is 305
    )
    usd = records(
        right,
        {"reference": "B2", "amount": "10", "account": "6", "currency": "USD"},
        {"reference": "B2", "amount": "20", "account": "7", "currency": "USD"},
    )
    run = reconcile(defn)
    got = outcome_of(run)
    assert got[lid] == got[eur_l] == "missing_right"
    assert {got[r] for r in stray + usd} == {"missing_left"}
    assert not Match.objects.filter(run_id=run.pk).exists()


def test_when_two_records_could_take_one_group_the_closest_takes_it_and_a_record_is_matched_once():
    defn, left, right = two_way(
        [EXACT, aggregate("one_to_many", amount={"absolute": "1"})], break_keys=["account"]
    )
    near, nearer = records(
        left,
        {"reference": "G", "amount": "299.50", "account": "1"},
        {"reference": "G", "amount": "300.00", "account": "2"},
    )
    parts = records(
        right,
        {"reference": "G", "amount": "100", "account": "3"},
        {"reference": "G", "amount": "200", "account": "4"},
    )
    run = reconcile(defn)
    assert groups_of(run) == {"agg": [sorted([nearer, *parts])]}
    assert outcome_of(run)[near] == "missing_right"
    # The invariant is the database's: a second active match for a matched record is refused.
    match = Match.objects.get(run_id=run.pk)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO reconciliation_match_item (match_id, record_id, business_date, side, tenant_id,"
            " definition_id, is_active) VALUES (%s, %s, %s, 'right', %s, %s, true)",
            [match.pk + 1000, parts[0], AS_OF, defn.tenant_id, defn.pk],
        )
    # And the next run does not see them again (open items only).
    assert reconcile(defn).records_in_scope == 1


def test_aggregation_refuses_bad_specs():
    for bad, message in [
        ({"cardinality": "one_to_one"}, "cardinality"),
        ({"keys": []}, "keys"),
        ({"amount": False}, "sums"),
    ]:
        with pytest.raises(ApplicationError, match=message):
            parse_rules({"passes": [EXACT, aggregate("one_to_many") | bad]})


# --- aggregation: dates over every member ------------------------------------------------------------

DAY = AS_OF  # the counterpart's value date; a window of two days either side


def dated(cardinality: str, group: str | None = None, window_days: int = 2) -> dict:
    date = {"field": "value_date", "window_days": window_days} | ({"group": group} if group else {})
    return aggregate(cardinality, date=date)


def days(n: int):
    return DAY + timedelta(days=n)


def sides_of(cardinality: str, left, right):
    """(the counterpart's source, the members' source) of a 1:N or N:1 pass."""
    return (left, right) if cardinality == "one_to_many" else (right, left)


# Member dates relative to the counterpart's, and whether the group matches under member / span.
# The counterpart is inside the span, so span is never looser than member: a group that fails member
# fails span too, and span also refuses a group whose members sit on either side of the counterpart.
DATED_GROUPS = [
    pytest.param((0, 1, 2), True, True, id="all-within-the-window-and-the-span"),
    pytest.param((-2, 0, 2), True, False, id="each-within-the-window-but-spanning-4-days"),
    pytest.param((0, 1, 5), False, False, id="one-partial-settlement-3-days-outside"),
    pytest.param((-3, 0, 0), False, False, id="one-partial-settlement-before-the-window"),
]


@pytest.mark.parametrize("cardinality", ["one_to_many", "many_to_one"])
@pytest.mark.parametrize(("offsets", "under_member", "under_span"), DATED_GROUPS)
@pytest.mark.parametrize("group", [None, "member", "span"])
def test_an_aggregate_date_condition_holds_for_every_member(
    cardinality, offsets, under_member, under_span, group
):
    defn, left, right = two_way([EXACT, dated(cardinality, group)], break_keys=["account"])
    one, many = sides_of(cardinality, left, right)
    (counterpart,) = records(
        one, {"reference": "BATCH", "amount": "60.00", "value_date": DAY, "account": "C"}
    )
    members = records(
        many,
        *({"reference": "BATCH", "amount": "20.00", "value_date": days(d), "account": f"M{i}"}
          for i, d in enumerate(offsets)),
    )  # fmt: skip
    run = reconcile(defn)
    assert run.conservation["ok"], run.conservation
    expected = under_span if group == "span" else under_member  # no group given: member
    got = outcome_of(run)
    if expected:
        assert groups_of(run) == {"agg": [sorted([counterpart, *members])]}
        # member: the farthest member from the counterpart; span: earliest to latest of all.
        everyone = (*offsets, 0)
        farthest = max(everyone) - min(everyone) if group == "span" else max(abs(d) for d in offsets)
        match = Match.objects.get(run_id=run.pk)
        assert match.differences.get("date_days", 0) == farthest
        # Closeness of the dates: at the window's edge a group scores 0.5, as a pair does.
        assert match.score == 1 - Decimal(farthest) / 2 / 2
    else:
        assert not Match.objects.filter(run_id=run.pk).exists()
        # Not matched: every record stays unmatched and ends in the breaks (break keys: account).
        on_left, on_right = "missing_right", "missing_left"
        assert got[counterpart] == (on_left if one == left else on_right)
        assert {got[m] for m in members} == {on_right if one == left else on_left}


def test_a_group_the_date_refuses_goes_to_the_next_pass():
    strict = dated("one_to_many") | {"name": "agg_2d"}
    wide = dated("one_to_many", window_days=5) | {"name": "agg_5d"}
    defn, left, right = two_way([EXACT, strict, wide], break_keys=["account"])
    (batch,) = records(left, {"reference": "B", "amount": "30", "value_date": DAY, "account": "1"})
    parts = records(
        right,
        {"reference": "B", "amount": "10", "value_date": DAY, "account": "2"},
        {"reference": "B", "amount": "20", "value_date": days(4), "account": "3"},  # settled 4 days late
    )
    # The two-day pass leaves the whole group in the pools; the five-day pass after it takes it.
    assert groups_of(reconcile(defn)) == {"agg_5d": [sorted([batch, *parts])]}


def test_a_member_without_the_date_never_completes_a_dated_group():
    defn, left, right = two_way([EXACT, dated("many_to_one")], break_keys=["account"])
    parts = records(
        left,
        {"reference": "P", "amount": "10", "value_date": DAY, "account": "1"},
        {"reference": "P", "amount": "20", "account": "2"},  # no value date
    )
    (total,) = records(right, {"reference": "P", "amount": "30", "value_date": DAY, "account": "3"})
    got = outcome_of(reconcile(defn))
    assert {got[i] for i in parts} == {"missing_right"}
    assert got[total] == "missing_left"


@pytest.mark.parametrize(
    ("right_offsets", "group", "expected"),
    [
        pytest.param((0, 0), "member", True, id="every-cross-side-pair-within-2-days"),
        pytest.param((0, 0), "span", False, id="spanning-4-days"),
        pytest.param((0, 1), "member", False, id="days-minus-2-and-1-are-3-apart"),
    ],
)
def test_many_to_many_dates_compare_every_record_with_every_record_of_the_other_side(
    right_offsets, group, expected
):
    defn, left, right = two_way([EXACT, dated("many_to_many", group)], break_keys=["account"])
    lefts = records(
        left,
        {"reference": "N", "amount": "10", "value_date": days(-2), "account": "1"},
        {"reference": "N", "amount": "20", "value_date": days(2), "account": "2"},
    )
    rights = records(
        right,
        *({"reference": "N", "amount": "15", "value_date": days(d), "account": f"R{d}{i}"}
          for i, d in enumerate(right_offsets)),
    )  # fmt: skip
    run = reconcile(defn)
    assert groups_of(run) == ({"agg": [sorted(lefts + rights)]} if expected else {})
    assert run.conservation["ok"]


def test_an_aggregate_pass_without_a_date_compares_no_dates_as_before():
    defn, left, right = two_way([EXACT, aggregate("one_to_many")], break_keys=["account"])
    (batch,) = records(left, {"reference": "B", "amount": "30", "value_date": DAY, "account": "1"})
    parts = records(
        right,
        {"reference": "B", "amount": "10", "value_date": days(-20), "account": "2"},
        {"reference": "B", "amount": "20", "account": "3"},
    )
    run = reconcile(defn)
    assert groups_of(run) == {"agg": [sorted([batch, *parts])]}
    assert "date_days" not in Match.objects.get(run_id=run.pk).differences


def test_aggregate_dates_refuse_bad_specs_and_say_where():
    def refused(spec) -> str:
        with pytest.raises(ApplicationError) as exc:
            parse_rules({"passes": [EXACT, spec]})
        assert exc.value.code == "invalid_rules"
        return exc.value.message

    assert refused(dated("one_to_many", "spread")).startswith("passes[1].date.group: 'member'")
    assert refused(aggregate("one_to_many", date={"window_days": -1})) == (
        "passes[1].date.window_days: a whole number of days >= 0."
    )
    assert "passes[1].date.field" in refused(aggregate("one_to_many", date={"field": "booked_on"}))
    assert "unknown keys ['window']" in refused(aggregate("one_to_many", date={"window": 2}))
    assert refused(aggregate("one_to_many", date="value_date")).startswith("passes[1].date: expected")
    # A pair has no group: said, not silently ignored.
    tolerance = {"name": "near", "type": "tolerance", "keys": ["reference"], "date": {"group": "span"}}
    assert refused(tolerance) == "passes[1].date.group: only an aggregate pass's date has a group condition."
    # The services every surface writes rules through (admin, apply_config, API) refuse it alike.
    defn, _, _ = two_way([EXACT])
    with pytest.raises(ApplicationError) as exc:
        services.rules_publish(
            definition=defn, actor=ACTOR, rules={"passes": [EXACT, dated("one_to_many", "spread")]}
        )
    assert (exc.value.code, exc.value.status) == ("invalid_rules", 400)
    assert defn.rule_versions.count() == 1
    # The default is member, and the engine's reading of the rules says so.
    (parsed,) = [p for p in parse_rules({"passes": [EXACT, dated("one_to_many")]}).passes if p.name == "agg"]
    assert parsed.describe()["date"] == {"field": "value_date", "window_days": 2, "group": "member"}
