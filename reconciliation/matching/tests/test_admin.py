"""The admin calls the services: accept/reject/unmatch actions with their reasons, matching by hand, the
approvers' queue (four-eyes holds there too), simulation requests."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Min

from jfintech.audit import Actor
from jfintech.tenancy.models import Membership, Role
from jfintech.testing.processes import wait_until
from jfintech.tests.factories import member
from reconciliation.matching.models import SimulationReport
from reconciliation.matching.tests.factories import ACTOR, reconcile, records, two_way
from reconciliation.runs import services
from reconciliation.runs.models import Match

pytestmark = pytest.mark.django_db(transaction=True)

EXACT = {"name": "exact_ref", "type": "exact", "keys": ["reference"]}
SUGGEST = {"name": "fuzzy", "type": "fuzzy", "min_similarity": "0.3", "auto_threshold": "0.9",
           "suggest_threshold": "0.5"}  # fmt: skip
MATCHES = "/admin/reconciliation/matchreview/"


def staff(client, tenant, role):
    user = member(tenant, role, is_staff=True)
    client.force_login(user)
    return user


def suggested():
    defn, left, right = two_way([EXACT, SUGGEST], break_keys=["account"])
    records(
        left,
        {"reference": "ACME Corp", "amount": "20", "account": "1"},
        {"reference": "Globex Corporation", "amount": "30", "account": "3"},
    )
    records(
        right,
        {"reference": "acme corporation", "amount": "20", "account": "2"},
        {"reference": "GLOBEX CORP", "amount": "30", "account": "4"},
    )
    run = reconcile(defn)
    # In the order of their left records (ACME, then Globex): match ids follow the engine's plan.
    matches = Match.objects.filter(run_id=run.pk).annotate(first_record=Min("items__record_id"))
    return defn, run, matches.order_by("first_record")


def act(client, action: str, ids, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids], "index": "0", **extra}
    return client.post(MATCHES, data)


def test_suggestions_are_accepted_and_rejected_from_the_list_with_a_reason(client):
    defn, _, (first, second) = suggested()
    staff(client, defn.tenant, Role.ANALYST)
    page = client.get(MATCHES, {"status__exact": "suggested"})
    assert page.status_code == 200
    assert f">{first.pk}<" in page.content.decode()
    asked = act(client, "reject", [first.pk])
    assert asked.status_code == 200
    assert b"Reason / note" in asked.content  # the intermediate page
    empty = act(client, "reject", [first.pk], apply="1", text="")
    assert empty.status_code == 200  # asked again: a rejection needs a reason
    first.refresh_from_db()
    assert first.status == "suggested"
    act(client, "reject", [first.pk], apply="1", text="different payee")
    act(client, "accept", [second.pk], apply="1", text="")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.decision_note, second.status) == ("rejected", "different payee", "active")
    detail = client.get(f"{MATCHES}{second.pk}/change/")
    assert detail.status_code == 200
    assert b"GLOBEX CORP" in detail.content


def test_matching_by_hand_and_unmatching_in_the_admin(client):
    defn, _, (first, _) = suggested()
    staff(client, defn.tenant, Role.ANALYST)
    ids = sorted(first.items.values_list("record_id", flat=True))
    response = client.post(
        f"{MATCHES}manual-match/",
        {"definition": defn.pk, "record_ids": " ".join(map(str, ids)), "reason": "remittance advice"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    manual = Match.objects.get(definition_id=defn.pk, pass_name="manual")
    assert response["Location"].endswith(f"/{manual.pk}/change/")
    refused = client.post(
        f"{MATCHES}manual-match/",
        {"definition": defn.pk, "record_ids": " ".join(map(str, ids)), "reason": "x"},
    )
    assert b"already" in refused.content
    act(client, "unmatch", [manual.pk], apply="1", text="wrong")
    manual.refresh_from_db()
    assert manual.status == "undone"


def test_the_approvers_queue_keeps_four_eyes(client):
    defn, _, _ = suggested()
    author = member(defn.tenant, Role.ADMIN, is_staff=True)  # only a tenant admin changes rules
    version = services.rules_publish(definition=defn, actor=Actor.for_user(author), rules={"passes": [EXACT]})
    # Made approver since: the approver role does not let them check their own rules.
    Membership.objects.filter(tenant=defn.tenant, user=author).update(role=Role.APPROVER)
    url = "/admin/reconciliation/ruleversionapproval/"
    client.force_login(author)
    data = {
        "action": "approve",
        ACTION_CHECKBOX_NAME: [str(version.pk)],
        "index": "0",
        "apply": "1",
        "text": "",
    }
    page = client.post(url, data, follow=True)
    assert b"author of a rule version cannot" in page.content
    version.refresh_from_db()
    assert version.status == "pending"
    staff(client, defn.tenant, Role.APPROVER)
    client.post(url, data)
    version.refresh_from_db()
    assert version.status == "approved"


def test_a_simulation_is_requested_from_the_admin_and_computed_by_a_worker(client, celery_workers):
    defn, run, _ = suggested()
    staff(client, defn.tenant, Role.ANALYST)
    response = client.post(
        "/admin/reconciliation/simulationreport/add/",
        {"kind": "impact", "definition": defn.pk, "rule_version": run.rule_version_id, "base_run": run.pk},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    report = SimulationReport.objects.get(definition=defn)
    assert (report.kind, report.base_run_id, report.status) == ("impact", run.pk, "pending")
    missing_run = client.post(
        "/admin/reconciliation/simulationreport/add/", {"kind": "impact", "definition": defn.pk}
    )
    assert missing_run.status_code == 200  # the form says what is missing
    assert SimulationReport.objects.filter(definition=defn).count() == 1
    # The worker computes it (and is done before the test's tables are flushed under it).
    wait_until(lambda: SimulationReport.objects.get(pk=report.pk).status != "pending", timeout=60)
    assert SimulationReport.objects.get(pk=report.pk).status == "completed"


def test_rule_version_pages_show_the_passes_with_an_aggregate_dates_default_group(client):
    defn, _, _ = suggested()
    dated = {"name": "batch", "type": "aggregate", "cardinality": "one_to_many", "keys": ["reference"],
             "date": {"field": "value_date", "window_days": 2}}  # fmt: skip
    version = services.rules_publish(definition=defn, actor=ACTOR, rules={"passes": [EXACT, dated]})
    staff(client, defn.tenant, Role.APPROVER)
    for url in (
        f"/admin/reconciliation/ruleversionapproval/{version.pk}/change/",
        f"/admin/reconciliation/ruleversion/{version.pk}/change/",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.content.decode()
        # The JSON as written has no group; the passes as run say which one applies.
        assert "Passes as run (defaults filled in)" in html
        assert "&quot;group&quot;: &quot;member&quot;" in html, url
