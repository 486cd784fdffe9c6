"""Dry runs write nothing but their report; impact simulations report the diff a hand computes."""

import pytest
from django.db import connection

from jfintech.audit.models import AuditEvent
from reconciliation.matching import simulation
from reconciliation.matching.models import SimulationReport
from reconciliation.matching.tests.factories import (
    ACTOR,
    approve,
    outcome_of,
    reconcile,
    records,
    two_way,
)
from reconciliation.runs import services
from reconciliation.runs.models import Match

pytestmark = pytest.mark.django_db(transaction=True)

EXACT = {"name": "exact_ref", "type": "exact", "keys": ["reference"]}
TOLERANCE = {"name": "tol", "type": "tolerance", "keys": ["reference"], "amount": {"absolute": "0.05"}}


def row_counts() -> dict:
    """Rows of every table in the schema (each partition of the record table on its own)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1"
        )
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


def dry_run(defn, **kwargs) -> SimulationReport:
    report = simulation.simulation_request(
        tenant=defn.tenant, actor=ACTOR, kind="dry_run", definition_id=defn.pk, dispatch=False, **kwargs
    )
    assert simulation.simulation_execute(report_id=report.pk) == "completed"
    report.refresh_from_db()
    return report


def test_a_dry_run_writes_nothing_but_its_report_and_reports_what_the_run_then_does():
    fuzzy = {"name": "fuzzy", "type": "fuzzy", "min_similarity": "0.4", "auto_threshold": "0.9",
             "suggest_threshold": "0.4"}  # fmt: skip
    agg = {"name": "agg", "type": "aggregate", "cardinality": "one_to_many", "keys": ["reference"]}
    defn, left, right = two_way([EXACT, fuzzy, agg], break_keys=["reference"])
    records(
        left,
        {"reference": "A", "amount": "1"},
        {"reference": "ACME Corp", "amount": "2"},
        {"reference": "B", "amount": "30"},
        {"reference": "C", "amount": "4"},
    )
    records(
        right,
        {"reference": "A", "amount": "1"},
        {"reference": "acme corporation", "amount": "2"},
        {"reference": "B", "amount": "10"},
        {"reference": "B", "amount": "20"},
        {"reference": "D", "amount": "5"},
    )
    reconcile(defn)  # a first run: its outcome stays, the scope of the next is what it left
    records(left, {"reference": "E", "amount": "6"})
    records(right, {"reference": "E", "amount": "6"}, {"reference": "E2", "amount": "7"})
    before = row_counts()
    report = dry_run(defn)
    after = row_counts()
    changed = {t: (before.get(t), n) for t, n in after.items() if before.get(t) != n}
    assert changed == {
        "reconciliation_simulationreport": (before["reconciliation_simulationreport"], 1),
        "jfintech_auditevent": (before["jfintech_auditevent"], before["jfintech_auditevent"] + 1),
    }
    assert AuditEvent.objects.filter(
        action="recon_simulation.dry_run_requested", object_id=str(report.pk)
    ).exists()
    summary = report.summary
    run = reconcile(defn)
    assert {k: summary[k] for k in ("records_in_scope", "matched", "suggested", "in_breaks", "excluded")} == {
        "records_in_scope": run.records_in_scope,
        "matched": run.matched,
        "suggested": run.suggested,
        "in_breaks": run.in_breaks,
        "excluded": run.excluded,
    }
    assert summary["breaks_by_type"] == run.breaks_by_type
    assert summary["conservation"]["ok"]
    # Open items: the suggested ACME pair, C, D and the new E, E, E2: E/E matched, ACME suggested again.
    assert (summary["records_in_scope"], summary["matched"], summary["suggested"]) == (7, 2, 2)


def test_a_dry_run_tries_a_pending_rule_version_before_anyone_approves_it():
    defn, left, right = two_way([EXACT])
    records(left, {"reference": "A", "amount": "100.00"})
    records(right, {"reference": "A", "amount": "100.03"})
    looser = services.rules_publish(
        definition=defn,
        actor=ACTOR,
        rules={"passes": [EXACT, TOLERANCE]},
    )
    assert looser.status == "pending"
    current = dry_run(defn)
    trial = dry_run(defn, rule_version_id=looser.pk)
    assert (current.summary["matched"], current.summary["breaks_by_type"]) == (0, {"amount_mismatch": 1})
    assert (trial.summary["matched"], trial.summary["breaks_by_type"]) == (2, {})
    assert trial.summary["rule_version"] == 2
    assert simulation.simulation_execute(report_id=trial.pk) == "completed"  # a redelivery: no change


def test_impact_simulation_reports_the_hand_computed_diff():
    v1_rules = {
        "passes": [EXACT, {"name": "exact_acct", "type": "exact", "keys": ["account"]}],
        "break_keys": ["reference"],
    }
    defn, left, right = two_way(v1_rules["passes"], break_keys=["reference"])
    l1, l2, l3, l4, l7 = records(
        left,
        {"reference": "A", "amount": "100"},
        {"reference": "ACME Corp", "amount": "20"},
        {"reference": "B", "amount": "50"},
        {"reference": "P1", "amount": "300"},
        {"reference": "X7", "amount": "5", "account": "ACC7"},
    )
    r1, r2, r3, r4, r5, r7 = records(
        right,
        {"reference": "A", "amount": "100"},
        {"reference": "acme corporation", "amount": "20"},
        {"reference": "B", "amount": "50.02"},
        {"reference": "P1", "amount": "100"},
        {"reference": "P1", "amount": "200"},
        {"reference": "Y7", "amount": "5", "account": "ACC7"},
    )
    base = reconcile(defn)
    assert outcome_of(base) == {
        l1: "matched:exact_ref", r1: "matched:exact_ref",
        l7: "matched:exact_acct", r7: "matched:exact_acct",
        l2: "missing_right", r2: "missing_left",
        l3: "amount_mismatch", r3: "amount_mismatch",
        l4: "amount_mismatch", r4: "amount_mismatch", r5: "missing_left",
    }  # fmt: skip
    # Later an analyst unmatches L1/R1: the replay still sees the past run's scope as it was.
    services_match = Match.objects.get(run_id=base.pk, pass_name="exact_ref")
    from reconciliation.matching import manual

    manual.match_unmatch(tenant=defn.tenant, actor=ACTOR, match_id=services_match.pk, reason="test")
    v2 = services.rules_publish(
        definition=defn,
        actor=ACTOR,
        rules={
            "passes": [
                TOLERANCE,
                EXACT,
                {"name": "fuzzy", "type": "fuzzy", "min_similarity": "0.4"},
                {"name": "agg", "type": "aggregate", "cardinality": "one_to_many", "keys": ["reference"]},
            ],
            "break_keys": ["reference"],
        },
    )
    approve(v2)
    before = row_counts()
    report = simulation.simulation_request(
        tenant=defn.tenant,
        actor=ACTOR,
        kind="impact",
        definition_id=defn.pk,
        base_run_id=base.pk,
        rule_version_id=v2.pk,
        dispatch=False,
    )
    assert simulation.simulation_execute(report_id=report.pk) == "completed"
    report.refresh_from_db()
    after = row_counts()
    assert {t for t, n in after.items() if before.get(t) != n} == {
        "reconciliation_simulationreport",
        "jfintech_auditevent",
    }

    def rows(section, change):
        return [(r["record_ids"], r["before"], r["after"]) for r in report.diff[section][change]["rows"]]

    def m(name, outcome="active"):
        return {"pass": name, "outcome": outcome}

    assert rows("matches", "gained") == sorted(
        [
            ([l2, r2], None, m("fuzzy")),
            ([l3, r3], None, m("tol")),
            ([l4, r4, r5], None, m("agg")),
        ]
    )
    assert rows("matches", "lost") == [([l7, r7], m("exact_acct"), None)]
    assert rows("matches", "changed") == [([l1, r1], m("exact_ref"), m("tol"))]
    assert [(ids, b, a) for ids, b, a in rows("breaks", "gone")] == sorted(
        [
            ([l2], "missing_right", None),
            ([r2], "missing_left", None),
            (sorted([l3, r3]), "amount_mismatch", None),
            (sorted([l4, r4]), "amount_mismatch", None),
            ([r5], "missing_left", None),
        ]
    )
    assert rows("breaks", "new") == sorted([([l7], None, "missing_right"), ([r7], None, "missing_left")])
    assert report.diff["breaks"]["changed"] == {"count": 0, "rows": []}
    assert {k: v["count"] for k, v in report.diff["matches"].items()} == {
        "gained": 3,
        "lost": 1,
        "changed": 1,
    }
    assert report.summary["base"]["run_id"] == base.pk
    assert report.summary["matched"] == 9  # L1 R1, L2 R2, L3 R3, L4 R4 R5
    # The unmatch stands: nothing of the simulation leaked into the live matches.
    services_match.refresh_from_db()
    assert services_match.status == "undone"


def test_impact_simulation_needs_a_completed_run_of_the_definition():
    from jfintech.common.errors import ApplicationError

    defn, _, _ = two_way([EXACT])
    other, _, _ = two_way([EXACT], tenant=defn.tenant)
    run = reconcile(other)
    with pytest.raises(ApplicationError) as exc:
        simulation.simulation_request(
            tenant=defn.tenant,
            actor=ACTOR,
            kind="impact",
            definition_id=defn.pk,
            base_run_id=run.pk,
            dispatch=False,
        )
    assert exc.value.status == 404


def test_the_reconcile_command_dry_runs_without_starting_a_run():
    import io
    import json

    from django.core.management import call_command

    from reconciliation.runs.models import Run

    defn, left, right = two_way([EXACT])
    records(left, {"reference": "A", "amount": "1"}, {"reference": "B", "amount": "2"})
    records(right, {"reference": "A", "amount": "1"})
    out = io.StringIO()
    call_command(
        "reconcile", "--tenant", defn.tenant.slug, "--definition", defn.name, "--as-of", "2026-11-20",
        "--dry-run", "--json", stdout=out,
    )  # fmt: skip
    summary = json.loads(out.getvalue())
    assert summary["dry_run"] is True
    assert (summary["records_in_scope"], summary["matched"], summary["breaks_by_type"]) == (
        3,
        2,
        {"missing_right": 1},
    )
    assert not Run.objects.filter(definition=defn).exists()
    assert SimulationReport.objects.get(pk=summary["simulation_id"]).status == "completed"
