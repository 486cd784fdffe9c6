"""The matching-depth API: suggestions, manual match/unmatch, rule approval, simulations, similar records;
Idempotency-Key on every POST, roles, and the standard error shape."""

import pytest
from rest_framework.test import APIClient

from jfintech.audit.models import AuditEvent
from jfintech.tenancy.models import Role
from jfintech.testing.processes import wait_until
from jfintech.tests.factories import member
from reconciliation.matching.models import SimulationReport
from reconciliation.matching.tests.factories import (
    ACTOR,
    outcome_of,
    reconcile,
    records,
    two_way,
)
from reconciliation.runs import services
from reconciliation.runs.models import Match

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "/api/v1/reconciliation"
EXACT = {"name": "exact_ref", "type": "exact", "keys": ["reference"]}
SUGGEST = {"name": "fuzzy", "type": "fuzzy", "min_similarity": "0.3", "auto_threshold": "0.9",
           "suggest_threshold": "0.5"}  # fmt: skip


def client(user, tenant) -> APIClient:
    c = APIClient()
    c.force_login(user)
    c.defaults["HTTP_X_TENANT"] = tenant.slug
    return c


@pytest.fixture
def setup():
    defn, left, right = two_way([EXACT, SUGGEST], break_keys=["account"])
    (lid,) = records(left, {"reference": "ACME Corp", "amount": "20", "account": "1"})
    (rid,) = records(right, {"reference": "acme corporation", "amount": "20", "account": "2"})
    run = reconcile(defn)
    return {
        "defn": defn,
        "run": run,
        "pair": (lid, rid),
        "suggestion": Match.objects.get(run_id=run.pk),
        "analyst": client(member(defn.tenant, Role.ANALYST), defn.tenant),
        "approver": client(member(defn.tenant, Role.APPROVER), defn.tenant),
        "integration": client(member(defn.tenant, Role.INTEGRATION), defn.tenant),
    }


def test_suggestions_are_listed_and_accepted_once_whatever_the_retries(setup):
    analyst, suggestion = setup["analyst"], setup["suggestion"]
    listed = analyst.get(f"{BASE}/matches/", {"status": "suggested", "definition": setup["defn"].pk})
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["id"], row["score"], row["pass_name"]) == (suggestion.pk, "0.500000", "fuzzy")
    assert {r["id"] for r in row["records"]} == set(setup["pair"])
    url = f"{BASE}/matches/{suggestion.pk}/accept/"
    first = analyst.post(url, {"note": "same customer"}, format="json", HTTP_IDEMPOTENCY_KEY="acc-1")
    again = analyst.post(url, {"note": "same customer"}, format="json", HTTP_IDEMPOTENCY_KEY="acc-1")
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json() == again.json()
    assert first.json()["status"] == "active"
    assert AuditEvent.objects.filter(action="recon_match.suggestion_accepted").count() == 1
    refused = analyst.post(url, {}, format="json")  # without the key: the service says no
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_suggested"


def test_reject_needs_a_reason_and_the_integration_role_may_not_decide(setup):
    url = f"{BASE}/matches/{setup['suggestion'].pk}/reject/"
    assert setup["integration"].post(url, {"reason": "x"}, format="json").status_code == 403
    missing = setup["analyst"].post(url, {}, format="json")
    assert missing.status_code == 400
    done = setup["analyst"].post(url, {"reason": "other payee"}, format="json")
    assert (done.status_code, done.json()["status"]) == (200, "rejected")


def test_manual_match_and_unmatch_over_the_api(setup):
    defn, analyst = setup["defn"], setup["analyst"]
    lid, rid = setup["pair"]
    created = analyst.post(
        f"{BASE}/definitions/{defn.pk}/manual-matches/",
        {"record_ids": [lid, rid], "reason": "confirmed by phone"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="mm-1",
    )
    assert created.status_code == 201, created.json()
    match = created.json()
    assert (match["pass_name"], match["status"], match["decision_note"]) == (
        "manual",
        "active",
        "confirmed by phone",
    )
    assert created.headers["Location"] == f"/api/v1/reconciliation/matches/{match['id']}/"
    setup["suggestion"].refresh_from_db()
    assert setup["suggestion"].status == "expired"
    taken = analyst.post(
        f"{BASE}/definitions/{defn.pk}/manual-matches/",
        {"record_ids": [lid, rid], "reason": "again"},
        format="json",
    )
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "record_already_matched")
    undone = analyst.post(f"{BASE}/matches/{match['id']}/unmatch/", {"reason": "mistake"}, format="json")
    assert (undone.status_code, undone.json()["status"]) == (200, "undone")
    assert set(outcome_of(reconcile(defn))) == {lid, rid}  # open items again


def test_rule_versions_are_approved_by_an_approver_who_is_not_the_author(setup):
    defn = setup["defn"]
    version = services.rules_publish(
        definition=defn, actor=ACTOR, rules={"passes": [EXACT]}, comment="simpler"
    )
    pending = setup["analyst"].get(f"{BASE}/rule-versions/", {"status": "pending"})
    assert [v["id"] for v in pending.json()["results"]] == [version.pk]
    detail = f"{BASE}/definitions/{defn.pk}/"
    assert setup["analyst"].get(detail).json()["rule_version"] == 1  # the pending one does not run yet
    url = f"{BASE}/rule-versions/{version.pk}/approve/"
    assert setup["analyst"].post(url, {}, format="json").status_code == 403
    approved = setup["approver"].post(url, {"note": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="rv-1")
    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    assert services.rule_version_current(defn) == version
    assert setup["analyst"].get(detail).json()["rule_version"] == 2


@pytest.mark.workers
def test_a_dry_run_requested_over_the_api_is_computed_by_a_worker(setup, celery_workers):
    defn = setup["defn"]
    records(setup["defn"].sources.get(side="left").source, {"reference": "Z", "amount": "3"})
    accepted = setup["analyst"].post(f"{BASE}/definitions/{defn.pk}/dry-runs/", {}, format="json")
    assert accepted.status_code == 202
    report_id = accepted.json()["id"]
    assert accepted.json()["status"] == "pending"
    wait_until(lambda: SimulationReport.objects.get(pk=report_id).status != "pending", timeout=60)
    detail = setup["analyst"].get(f"{BASE}/simulations/{report_id}/").json()
    assert detail["status"] == "completed", detail["error"]
    assert (detail["summary"]["records_in_scope"], detail["summary"]["suggested"]) == (3, 2)
    assert detail["summary"]["breaks_by_type"] == {"missing_right": 1}
    impact = setup["analyst"].post(
        f"{BASE}/runs/{setup['run'].pk}/impact/",
        {"rule_version_id": setup["run"].rule_version_id},
        format="json",
    )
    assert impact.status_code == 202
    impact_id = impact.json()["id"]
    wait_until(lambda: SimulationReport.objects.get(pk=impact_id).status != "pending", timeout=60)
    diff = setup["analyst"].get(f"{BASE}/simulations/{impact_id}/").json()["diff"]
    # The same rules on the same frozen scope: nothing changes.
    assert {k: v["count"] for k, v in diff["matches"].items()} == {"gained": 0, "lost": 0, "changed": 0}
    assert {k: v["count"] for k, v in diff["breaks"].items()} == {"new": 0, "gone": 0, "changed": 0}


def test_similar_records_rank_by_reference_similarity(setup):
    defn = setup["defn"]
    found = setup["analyst"].get(f"{BASE}/definitions/{defn.pk}/similar-records/", {"reference": "ACME corp"})
    assert found.status_code == 200
    rows = found.json()
    assert [r["reference"] for r in rows] == ["ACME Corp", "acme corporation"]
    assert rows[0]["similarity"] == "1.000000"
    assert rows[0]["matched"] is False
    # Only the window a run as of that date would see (the search has no index to scan years with).
    url = f"{BASE}/definitions/{defn.pk}/similar-records/"
    assert setup["analyst"].get(url, {"reference": "ACME corp", "as_of": "2001-01-01"}).json() == []
    assert setup["analyst"].get(url, {"reference": "ACME corp", "as_of": "yesterday"}).status_code == 400
