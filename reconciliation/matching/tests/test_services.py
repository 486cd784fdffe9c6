"""Suggestions accepted and rejected, manual match and unmatch, rule approval: the services, their
audit events, their refusals, and what the next run makes of them."""

import pytest
from django.db import connection

from exceptions.models import Case
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Membership, Role
from jfintech.tests.factories import UserFactory, member
from reconciliation.matching import approval, manual, suggestions
from reconciliation.matching.tests.factories import (
    ACTOR,
    TenantFactory,
    approve,
    approver_of,
    definition,
    outcome_of,
    reconcile,
    records,
    source_of,
    two_way,
)
from reconciliation.runs import services
from reconciliation.runs.models import Match, MatchItem

pytestmark = pytest.mark.django_db(transaction=True)

EXACT = {"name": "exact_ref", "type": "exact", "keys": ["reference"]}
SUGGEST = {
    "name": "fuzzy",
    "type": "fuzzy",
    "min_similarity": "0.3",
    "auto_threshold": "0.9",
    "suggest_threshold": "0.5",
}


def analyst(tenant) -> Actor:
    """The person "analyst", with the analyst role in ``tenant``: the services ask the permission table."""
    user = UserFactory(username="analyst")
    Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": Role.ANALYST})
    return Actor.for_user(user)


def suggestion_pair(tenant=None):
    """A definition that suggests (similarity 0.5) one left/right pair; returns it, the run and the pair."""
    defn, left, right = two_way([EXACT, SUGGEST], tenant=tenant, break_keys=["account"])
    (lid,) = records(left, {"reference": "ACME Corp", "amount": "20", "account": "1"})
    (rid,) = records(right, {"reference": "acme corporation", "amount": "20", "account": "2"})
    run = reconcile(defn)
    assert outcome_of(run) == {lid: "suggested:fuzzy", rid: "suggested:fuzzy"}
    return defn, run, lid, rid, Match.objects.get(run_id=run.pk)


def audited(action: str, match: Match) -> AuditEvent:
    return AuditEvent.objects.get(action=action, object_id=str(match.pk))


def active_items(match: Match) -> list[int]:
    return sorted(MatchItem.objects.filter(match=match, is_active=True).values_list("record_id", flat=True))


# --- suggestions ---------------------------------------------------------------------------------


def test_accepting_a_suggestion_matches_its_records_resolves_their_cases_and_is_audited():
    defn, left, right = two_way([EXACT], break_keys=["account"])
    (lid,) = records(left, {"reference": "ACME Corp", "amount": "20", "account": "1"})
    (rid,) = records(right, {"reference": "acme corporation", "amount": "20", "account": "2"})
    first = reconcile(defn)
    assert outcome_of(first) == {lid: "missing_right", rid: "missing_left"}
    assert Case.objects.filter(definition_id=defn.pk, status="open").count() == 2
    # The rules learn to suggest; four-eyes first.
    approve(
        services.rules_publish(
            definition=defn, actor=ACTOR, rules={"passes": [EXACT, SUGGEST]} | {"break_keys": ["account"]}
        )
    )
    second = reconcile(defn)
    assert outcome_of(second) == {lid: "suggested:fuzzy", rid: "suggested:fuzzy"}
    suggestion = Match.objects.get(run_id=second.pk)

    accepted = suggestions.suggestion_accept(
        tenant=defn.tenant, actor=analyst(defn.tenant), match_id=suggestion.pk, note="ok"
    )
    assert accepted.status == "active"
    assert accepted.decided_by == "analyst"
    assert active_items(accepted) == sorted([lid, rid])
    event = audited("recon_match.suggestion_accepted", accepted)
    assert event.before == {"status": "suggested"}
    assert event.after["cases_resolved"] == 2
    assert set(Case.objects.filter(definition_id=defn.pk).values_list("status", "resolution_reason")) == {
        ("resolved", "auto_matched")
    }
    assert reconcile(defn).records_in_scope == 0  # matched records are no open items any more
    with pytest.raises(ApplicationError) as again:
        suggestions.suggestion_accept(tenant=defn.tenant, actor=analyst(defn.tenant), match_id=suggestion.pk)
    assert again.value.code == "not_suggested"


def test_a_rejected_suggestion_is_never_proposed_again():
    defn, _, lid, rid, suggestion = suggestion_pair()
    with pytest.raises(ApplicationError, match="reason"):
        suggestions.suggestion_reject(
            tenant=defn.tenant, actor=analyst(defn.tenant), match_id=suggestion.pk, reason=" "
        )
    rejected = suggestions.suggestion_reject(
        tenant=defn.tenant, actor=analyst(defn.tenant), match_id=suggestion.pk, reason="different customers"
    )
    assert rejected.status == "rejected"
    assert audited("recon_match.suggestion_rejected", rejected).after["reason"] == "different customers"
    assert active_items(rejected) == []
    later = reconcile(defn)
    assert outcome_of(later) == {lid: "missing_right", rid: "missing_left"}
    assert later.conservation["ok"]


def test_a_later_run_expires_a_pending_suggestion_and_proposes_it_afresh():
    defn, _first, lid, rid, old = suggestion_pair()
    second = reconcile(defn)
    assert outcome_of(second) == {lid: "suggested:fuzzy", rid: "suggested:fuzzy"}
    old.refresh_from_db()
    assert old.status == "expired"
    assert Match.objects.filter(definition_id=defn.pk, status="suggested").count() == 1


def test_accepting_is_refused_when_a_record_was_matched_meanwhile():
    defn, _, lid, _rid, suggestion = suggestion_pair()
    other = Match.objects.create(
        tenant_id=defn.tenant_id,
        definition_id=defn.pk,
        pass_no=0,
        pass_name="manual",
        created_at=suggestion.created_at,
    )
    with connection.cursor() as cursor:  # a record taken by another active match (the index's job)
        cursor.execute(
            "INSERT INTO reconciliation_match_item (match_id, record_id, business_date, side, tenant_id,"
            " definition_id, is_active)"
            " SELECT %s, record_id, business_date, side, tenant_id, definition_id, true"
            " FROM reconciliation_match_item WHERE match_id = %s AND record_id = %s",
            [other.pk, suggestion.pk, lid],
        )
    with pytest.raises(ApplicationError) as exc:
        suggestions.suggestion_accept(tenant=defn.tenant, actor=analyst(defn.tenant), match_id=suggestion.pk)
    assert (exc.value.code, exc.value.status) == ("record_already_matched", 409)
    suggestion.refresh_from_db()
    assert suggestion.status == "suggested"  # nothing changed


def test_another_tenants_suggestion_is_not_found():
    _defn, _, _, _, suggestion = suggestion_pair()
    other = TenantFactory()
    with pytest.raises(ApplicationError) as exc:  # asked by a person of the other tenant
        suggestions.suggestion_accept(tenant=other, actor=analyst(other), match_id=suggestion.pk)
    assert exc.value.status == 404


# --- manual match and unmatch -------------------------------------------------------------------


def test_manual_match_then_unmatch_reopens_the_records_for_the_next_run():
    defn, left, right = two_way([EXACT], break_keys=["account"])
    (lid,) = records(left, {"reference": "X-1", "amount": "100.00", "account": "1"})
    r1, r2 = records(
        right,
        {"reference": "Y-1", "amount": "60.00", "account": "2"},
        {"reference": "Y-2", "amount": "40.00", "account": "3"},
    )
    first = reconcile(defn)
    assert set(outcome_of(first).values()) == {"missing_right", "missing_left"}
    assert Case.objects.filter(definition_id=defn.pk, status="open").count() == 3

    match = manual.match_create_manual(
        tenant=defn.tenant,
        actor=analyst(defn.tenant),
        definition_id=defn.pk,
        record_ids=[lid, r1, r2],
        reason="split payment",
    )
    assert (match.status, match.pass_name, match.run_id, match.created_by) == (
        "active",
        "manual",
        None,
        "analyst",
    )
    assert match.differences == {
        "cardinality": "1:2",
        "amount": {"EUR": {"left_sum": "100.000000", "right_sum": "100.000000", "delta": "0.000000"}},
    }
    assert active_items(match) == sorted([lid, r1, r2])
    created = audited("recon_match.manual_created", match)
    assert created.after["reason"] == "split payment"
    assert created.after["cases_resolved"] == 3
    assert not Case.objects.filter(definition_id=defn.pk, status="open").exists()
    assert reconcile(defn).records_in_scope == 0

    undone = manual.match_unmatch(
        tenant=defn.tenant, actor=analyst(defn.tenant), match_id=match.pk, reason="wrong customer"
    )
    assert undone.status == "undone"
    assert active_items(undone) == []
    assert audited("recon_match.unmatched", undone).after["reason"] == "wrong customer"
    reopened = reconcile(defn)
    assert reopened.records_in_scope == 3
    assert set(outcome_of(reopened)) == {lid, r1, r2}
    assert Case.objects.filter(definition_id=defn.pk, status="open").count() == 3  # reopened, not doubled
    assert Case.objects.filter(definition_id=defn.pk).count() == 3


def test_manual_match_expires_a_pending_suggestion_holding_its_records():
    defn, _, lid, _rid, suggestion = suggestion_pair()
    (other,) = records(source_of(defn, "right"), {"reference": "ACME", "amount": "20", "account": "9"})
    manual.match_create_manual(
        tenant=defn.tenant,
        actor=analyst(defn.tenant),
        definition_id=defn.pk,
        record_ids=[lid, other],
        reason="phone call",
    )
    suggestion.refresh_from_db()
    assert suggestion.status == "expired"


def test_manual_match_refusals():
    defn, left, right = two_way([EXACT])
    l1, l2 = records(left, {"reference": "A", "amount": "1"}, {"reference": "B", "amount": "2"})
    (r1,) = records(right, {"reference": "A", "amount": "1"})
    tenant = defn.tenant

    def refused(ids, reason="r", definition_id=defn.pk, as_tenant=tenant) -> ApplicationError:
        with pytest.raises(ApplicationError) as exc:
            manual.match_create_manual(
                tenant=as_tenant,
                actor=analyst(as_tenant),
                definition_id=definition_id,
                record_ids=ids,
                reason=reason,
            )
        return exc.value

    assert refused([l1, r1], reason="").code == "reason_required"
    assert refused([l1, l2]).code == "invalid_sides"
    assert refused([l1]).code == "invalid_records"
    assert refused([l1, r1 + 10_000]).code == "records_not_found"
    assert refused([l1, r1], as_tenant=TenantFactory()).status == 404
    other_defn = definition(tenant)
    assert refused([l1, r1], definition_id=other_defn.pk).code == "records_not_found"
    reconcile(defn)  # l1/r1 matched by the exact pass
    assert refused([l1, r1]).code == "record_already_matched"
    match = Match.objects.get(definition_id=defn.pk, status="active")
    manual.match_unmatch(tenant=tenant, actor=analyst(tenant), match_id=match.pk, reason="x")
    with pytest.raises(ApplicationError) as exc:
        manual.match_unmatch(tenant=tenant, actor=analyst(tenant), match_id=match.pk, reason="x")
    assert exc.value.code == "not_active"


# --- rule approval ----------------------------------------------------------------------------------


def test_a_rule_version_becomes_active_only_when_another_person_with_the_approver_role_approves_it():
    tenant = TenantFactory()
    defn = definition(tenant)
    author = member(tenant, role="admin")  # the table: only a tenant admin changes a definition's rules
    author_actor = Actor.for_user(author)
    an_analyst = member(tenant, role="analyst")
    v2 = services.rules_publish(definition=defn, actor=author_actor, rules={"passes": [EXACT, SUGGEST]})
    assert (v2.status, v2.author_principal) == ("pending", f"user:{author.pk}")
    assert services.rule_version_current(defn).version == 1
    # Made approver since (by another admin): the approver role does not let them check their own rules.
    Membership.objects.filter(tenant=tenant, user=author).update(role=Role.APPROVER)

    def refused(user, actor) -> ApplicationError:
        with pytest.raises(ApplicationError) as exc:
            approval.rule_version_decide(
                tenant=tenant, actor=actor, user=user, version_id=v2.pk, approve=True
            )
        return exc.value

    assert refused(author, author_actor).code == "author_cannot_approve"
    # The permission table refuses everyone but the approver role (the service's own check stays behind it).
    assert refused(an_analyst, Actor.for_user(an_analyst)).code == "permission_denied"
    admin = member(tenant, role="admin")
    assert refused(admin, Actor.for_user(admin)).code == "permission_denied"
    user, actor = approver_of(tenant)
    approved = approval.rule_version_decide(
        tenant=tenant, actor=actor, user=user, version_id=v2.pk, approve=True, note="reviewed"
    )
    assert (approved.status, approved.decided_by) == ("approved", user.get_username())
    assert services.rule_version_current(defn) == v2
    event = AuditEvent.objects.get(action="recon_rules.approved", object_id=str(v2.pk))
    assert event.after["status"] == "approved"
    assert event.before["status"] == "pending"
    assert refused(user, actor).code == "not_pending"


def test_a_rejected_version_never_runs_and_an_older_pending_one_cannot_overtake_a_newer_approved_one():
    tenant = TenantFactory()
    defn = definition(tenant)
    user, actor = approver_of(tenant)
    v2 = services.rules_publish(definition=defn, actor=ACTOR, rules={"passes": [EXACT, SUGGEST]})
    v3 = services.rules_publish(
        definition=defn,
        actor=ACTOR,
        rules={"passes": [SUGGEST | {"name": "f2"}, EXACT], "break_keys": ["reference"]},
    )
    approval.rule_version_decide(tenant=tenant, actor=actor, user=user, version_id=v3.pk, approve=True)
    with pytest.raises(ApplicationError) as exc:
        approval.rule_version_decide(tenant=tenant, actor=actor, user=user, version_id=v2.pk, approve=True)
    assert exc.value.code == "superseded"
    approval.rule_version_decide(
        tenant=tenant, actor=actor, user=user, version_id=v2.pk, approve=False, note="no"
    )
    v2.refresh_from_db()
    assert v2.status == "rejected"
    assert services.rule_version_current(defn) == v3
    assert AuditEvent.objects.filter(action="recon_rules.rejected", object_id=str(v2.pk)).exists()
