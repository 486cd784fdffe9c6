"""The role matrix (issue 15 §1): every admin model and every API endpoint by every role, against the
expected tables below. A model registered in the admin or a URL under /api/ that is not in a table
fails the test, as does a custom admin action that is not listed.

Roles, as letters in the tables: n analyst, p approver, i integration, a tenant admin, s superuser.
In the admin, integration is a staff user holding an ``integration`` membership (the admin is for
people; a key cannot log in to it); in the API it is an API key with the integration role. A staff
user without a membership ("nobody") must get nothing anywhere, in both surfaces.

The role users hold the Django model permissions the demo used to grant by role (view/change,
admins add too; admins, and the staff user without a membership, also every permission on users,
groups and beat): the tenant role alone must decide, whatever Django permissions a user holds.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.tenancy import services
from jfintech.tenancy.models import Membership, Role, Tenant
from jfintech.tests.conftest import client_for
from jfintech.tests.factories import TenantFactory, UserFactory, member

pytestmark = pytest.mark.django_db

ROLES = {"n": Role.ANALYST, "p": Role.APPROVER, "i": Role.INTEGRATION, "a": Role.ADMIN}
EVERY = "npias"
PLATFORM = "s"  # superusers only
NONE = ""

# --- the admin: model -> cell -> roles allowed ---------------------------------------------------
# cells: list (the changelist answers 200), add (the add page answers 200), view / change / delete
# (has_*_permission on a row of the tenant: change False is a read-only page, no SAVE button), and
# "action:<name>" for each admin action offered (delete_selected included where deleting is).
P = {c: PLATFORM for c in ("list", "add", "view", "change", "delete", "action:delete_selected")}
R_ALL = {"list": EVERY, "add": NONE, "view": EVERY, "change": NONE, "delete": NONE}
R_DESK = {"list": "npas", "add": NONE, "view": "npas", "change": NONE, "delete": NONE}
EXPECTED_ADMIN = {
    "auth.Group": P,
    "auth.User": P,
    "django_celery_beat.PeriodicTask": {
        **P,
        **{f"action:{a}": PLATFORM for a in ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")},
    },
    "django_celery_beat.ClockedSchedule": P,
    "django_celery_beat.CrontabSchedule": P,
    "django_celery_beat.SolarSchedule": P,
    "django_celery_beat.IntervalSchedule": P,
    "jfintech.PipelineCheck": {**P, "add": NONE, "change": NONE},  # read-only even for superusers
    "jfintech.Tenant": {**R_ALL, "change": "as", "add": "s"},  # a platform act; never deleted
    "jfintech.Membership": {
        "list": "as",
        "add": "as",
        "view": "as",
        "change": "as",
        "delete": "as",
        "action:delete_selected": "as",
    },
    "jfintech.ApiKey": {**R_ALL, "list": "as", "view": "as", "add": "as", "action:revoke_selected": "as"},
    "jfintech.IdempotencyKey": {**R_ALL, "list": "as", "view": "as"},
    "jfintech.AuditEvent": {**R_ALL, "list": "pas", "view": "pas"},
    "reconciliation.DataSource": {**R_ALL, "add": "as", "change": "as"},
    "reconciliation.IngestionBatch": {**R_ALL, "action:reverse_batches": "as"},
    "reconciliation.Definition": {**R_ALL, "add": "as", "change": "as", "action:start_runs": "nias"},
    "reconciliation.RuleVersion": R_ALL,
    "reconciliation.Run": {**R_ALL, "action:fail_runs": "as"},
    "reconciliation.Break": R_ALL,
    "reconciliation.MatchReview": {
        **R_ALL,
        **{f"action:{a}": "npas" for a in ("accept", "reject", "unmatch")},
    },
    "reconciliation.RuleVersionApproval": {**R_ALL, "action:approve": "p", "action:reject": "p"},
    "reconciliation.SimulationReport": {**R_ALL, "add": "npas"},
    "exceptions.Case": {
        **R_ALL,  # integration reads (case.view is everyone's); the actions are the desk's
        **{
            f"action:{a}": "npas"
            for a in (
                "assign_to_me",
                "assign_to",
                "set_root_cause",
                "set_priority",
                "resolve_with_note",
                "request_write_off",
            )
        },
        "action:approve": "p",  # four-eyes: a person with the approver role (superusers act as admin)
        "action:reject": "p",
    },
    "exceptions.RootCauseCategory": {**R_DESK, "add": "pas", "change": "pas"},
    "exceptions.ApprovalThreshold": {
        **R_DESK,
        "add": "as",
        "change": "as",
        "delete": "as",
        "action:delete_selected": "as",
    },
    "exceptions.SlaWebhook": {**R_DESK, "add": "as", "change": "as"},
    "exceptions.ApprovalRequest": R_DESK,
    "exceptions.WebhookDelivery": R_DESK,
    "reporting.ReportArtifact": R_DESK,
    "reporting.ReportSubscription": {
        **R_DESK,
        "add": "pas",
        "change": "pas",
        "action:deactivate_selected": "pas",
    },
    "reporting.ReportDelivery": R_DESK,
    "filings.FilingInstitution": {**R_DESK, "add": "as", "change": "as"},
    "filings.Branch": {**R_DESK, "add": "as", "change": "as"},
    "filings.ExemptPerson": {**R_DESK, "add": "as", "change": "as"},
    "filings.FxRate": {**R_DESK, "add": "as", "change": "as"},
    "filings.PartyVersion": R_DESK,
    "filings.CashTransaction": R_DESK,
    "filings.CtrExclusion": R_DESK,
    "filings.Filing": {
        **R_DESK,
        "action:validate": "nas",
        "action:request_approval": "nas",
        "action:approve": "p",
        "action:package": "npas",
        "action:amend": "nas",
    },
    "filings.Package": {**R_DESK, "action:submit": "ias"},  # integration transmits (API), sees no list
    "filings.Acknowledgement": R_DESK,
}

# --- the API: URL name -> method -> roles allowed (not answered 403 permission_denied) ----------
PUBLIC = "-npias"  # "-": anonymous too
EXPECTED_API = {
    "schema": {"GET": PUBLIC},
    "api-docs": {"GET": PUBLIC},
    "v1:root": {"GET": PUBLIC},
    "v1:pipeline-check-list": {"POST": PLATFORM},
    "v1:pipeline-check-detail": {"GET": PLATFORM},
    "v1:tenant": {"GET": EVERY, "PATCH": "as"},
    "v1:tenant-holidays": {"POST": "as"},
    "v1:tenant-list": {"GET": PLATFORM, "POST": PLATFORM},
    "v1:membership-list": {"GET": "as", "POST": "as"},
    "v1:membership-detail": {"GET": "as", "PATCH": "as", "DELETE": "as"},
    "v1:api-key-list": {"GET": "as", "POST": "as"},
    "v1:api-key-detail": {"GET": "as"},
    "v1:api-key-revoke": {"POST": "as"},
    "v1:audit-event-list": {"GET": "pas"},
    "v1:audit-event-detail": {"GET": "pas"},
    "v1:case-list": {"GET": EVERY},  # an integration reads cases, never works them
    "v1:case-detail": {"GET": EVERY},
    "v1:case-assign": {"POST": "npas"},
    "v1:case-transition": {"POST": "npas"},
    "v1:case-priority": {"POST": "npas"},
    "v1:case-comments": {"POST": "npas"},
    "v1:case-resolution-request": {"POST": "npas"},
    "v1:approval-list": {"GET": "npas"},
    "v1:approval-approve": {"POST": "p"},
    "v1:approval-reject": {"POST": "p"},
    "v1:ingestion-source-list": {"GET": EVERY, "POST": "as"},
    "v1:ingestion-source-detail": {"GET": EVERY},
    "v1:ingestion-batch-upload": {"POST": "ias"},
    "v1:ingestion-records-push": {"POST": "ias"},
    "v1:ingestion-batch-list": {"GET": EVERY},
    "v1:ingestion-batch-detail": {"GET": EVERY},
    "v1:ingestion-rejection-list": {"GET": EVERY},
    "v1:ingestion-batch-reverse": {"POST": "as"},
    "v1:recon-match-list": {"GET": EVERY},
    "v1:recon-match-detail": {"GET": EVERY},
    "v1:recon-match-accept": {"POST": "npas"},
    "v1:recon-match-reject": {"POST": "npas"},
    "v1:recon-match-unmatch": {"POST": "npas"},
    "v1:recon-manual-match": {"POST": "npas"},
    "v1:recon-similar-records": {"GET": EVERY},
    "v1:recon-dry-run": {"POST": "npas"},
    "v1:recon-run-impact": {"POST": "npas"},
    "v1:recon-rule-version-list": {"GET": EVERY},
    "v1:recon-rule-version-approve": {"POST": "p"},
    "v1:recon-rule-version-reject": {"POST": "p"},
    "v1:recon-simulation-list": {"GET": EVERY},
    "v1:recon-simulation-detail": {"GET": EVERY},
    "v1:recon-definition-list": {"GET": EVERY},
    "v1:recon-definition-detail": {"GET": EVERY},
    "v1:recon-run-list": {"GET": EVERY, "POST": "nias"},
    "v1:recon-run-detail": {"GET": EVERY},
    "v1:recon-run-break-list": {"GET": EVERY},
    "v1:report-run": {"GET": "npas"},
    "v1:report-aging": {"GET": "npas"},
    "v1:report-trends": {"GET": "npas"},
    "v1:report-inventory": {"GET": "npas"},
    "v1:report-statement": {"GET": "npas"},
    "v1:report-break-export": {"GET": "npas"},
    "v1:report-pack-list": {"POST": "pas"},
    "v1:report-export-list": {"POST": "npas"},
    "v1:report-export-detail": {"GET": "npas"},
    "v1:report-artifact-download": {"GET": "npas"},
    "v1:report-subscription-list": {"GET": "npas", "POST": "pas"},
    "v1:report-subscription-detail": {"GET": "npas", "PUT": "pas", "PATCH": "pas", "DELETE": "pas"},
    "v1:filing-list": {"GET": "npas"},
    "v1:filing-detail": {"GET": "npas"},
    "v1:filing-validate": {"POST": "nas"},
    "v1:filing-request-approval": {"POST": "nas"},
    "v1:filing-approve": {"POST": "p"},
    "v1:filing-send-back": {"POST": "p"},
    "v1:filing-amend": {"POST": "nas"},
    "v1:filing-ctr-prepare": {"POST": "nas"},
    "v1:filing-package-list": {"GET": "npas", "POST": "npas"},
    "v1:filing-package-detail": {"GET": "npas"},
    "v1:filing-package-xml": {"GET": "npas"},
    "v1:filing-package-submit": {"POST": "ias"},
    "v1:filing-package-acknowledgement": {"POST": "ias"},
    "v1:filing-rules": {"GET": "npas"},
    "v1:filing-sar-refer": {"POST": "npas"},
    "v1:filing-sar-edit": {"POST": "nas"},
    "v1:filing-history": {"GET": "npas"},
}


def _demo_permissions(user, role: str) -> None:
    # What `make demo` granted by role before the permission model: it must no longer matter.
    prefixes = {Role.ADMIN: ("view_", "change_", "add_")}.get(role, ("view_", "change_"))
    perms = Permission.objects.filter(
        content_type__app_label__in=["jfintech", "reconciliation", "exceptions"]
    )
    granted = [p for p in perms if p.codename.startswith(prefixes)]
    if role == Role.ADMIN:  # even users and beat: a tenant admin editing users could become superuser
        granted += Permission.objects.filter(content_type__app_label__in=["auth", "django_celery_beat"])
    user.user_permissions.set(granted)


@pytest.fixture
def world(tenant_a):
    """One user per role in tenant a (staff, with the demo's Django permissions), a superuser, a
    staff user without a membership, and an integration API key."""
    users = {}
    for letter, role in ROLES.items():
        users[letter] = member(tenant_a, role, is_staff=True)
        _demo_permissions(users[letter], role)
    users["s"] = UserFactory(username="root", is_staff=True, is_superuser=True)
    users["nobody"] = UserFactory(username="staff-without-membership", is_staff=True)
    _demo_permissions(users["nobody"], Role.ADMIN)
    key = services.api_key_create(
        tenant=tenant_a, actor=Actor.for_user(users["a"]), name="feed", role=Role.INTEGRATION
    )
    TenantFactory(slug="b")  # a second tenant: the superuser names a
    return {"tenant": tenant_a, "users": users, "key": key.plaintext}


def _admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _row_of(model, tenant):
    """An unsaved row of ``tenant`` for the object-level checks (they read only its tenant)."""
    if model is Tenant:
        return tenant
    if model is Membership:
        return Membership(tenant=tenant, user=UserFactory(), role=Role.ANALYST)
    if any(f.name == "tenant" for f in model._meta.concrete_fields):
        return model(tenant=tenant)
    return model()


def _admin_cells(model, model_admin, user, client, tenant) -> dict[str, bool]:
    opts = model._meta
    request = RequestFactory().get("/admin/")
    request.user = user
    row = _row_of(model, tenant)
    cells = {
        "list": client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")).status_code,
        "add": client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code,
    }
    for page, status in cells.items():
        assert status in (200, 403), (opts.label, page, user, status)
    cells = {page: status == 200 for page, status in cells.items()}
    cells["view"] = model_admin.has_view_permission(request, row)
    cells["change"] = model_admin.has_change_permission(request, row)
    cells["delete"] = model_admin.has_delete_permission(request, row)
    offered = model_admin.get_actions(request)
    for name in [*(model_admin.actions or []), *dict(admin.site.actions)]:
        cells[f"action:{name}"] = name in offered
    return cells


def test_every_admin_model_against_the_expected_table(world):
    registered = {m._meta.label: (m, a) for m, a in admin.site._registry.items()}
    assert set(registered) == set(EXPECTED_ADMIN), (
        "admin models not in EXPECTED_ADMIN (add them, with their roles)",
        sorted(set(registered) ^ set(EXPECTED_ADMIN)),
    )
    clients = {who: _admin_client(user) for who, user in world["users"].items()}
    wrong = []
    for label, (model, model_admin) in sorted(registered.items()):
        expected = EXPECTED_ADMIN[label]
        for who, user in world["users"].items():
            cells = _admin_cells(model, model_admin, user, clients[who], world["tenant"])
            for cell, allowed in cells.items():
                want = who != "nobody" and who in expected.get(cell, NONE)
                if allowed != want:
                    wrong.append(f"{label} {cell} {who}: {'allowed' if allowed else 'denied'}")
    assert not wrong, "\n".join(wrong)


def _api_patterns(resolver: URLResolver, prefix: str = "", namespace: str = ""):
    for p in resolver.url_patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _api_patterns(p, route, ns)
        elif isinstance(p, URLPattern) and route.startswith("api/"):
            yield f"{namespace}{p.name}", route, p.callback


def _path_of(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?\w+>", "999999", route)  # no such object: never acted upon


def _methods(callback) -> list[str]:
    view = getattr(callback, "view_class", None) or callback.cls
    return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]


def test_every_api_endpoint_against_the_expected_table(world):
    endpoints = {name: (route, cb) for name, route, cb in _api_patterns(get_resolver())}
    assert set(endpoints) == set(EXPECTED_API), (
        "API URLs not in EXPECTED_API (add them, with their roles)",
        sorted(set(endpoints) ^ set(EXPECTED_API)),
    )
    users = world["users"]
    callers = {who: client_for(users[who], tenant_slug="a") for who in ("n", "p", "a", "s", "nobody")}
    callers["i"] = client_for(api_key=world["key"])
    callers["-"] = client_for()
    wrong = []
    for name, (route, callback) in sorted(endpoints.items()):
        assert set(_methods(callback)) == set(EXPECTED_API[name]), (name, _methods(callback))
        for method, roles in EXPECTED_API[name].items():
            for who, client in callers.items():
                response = getattr(client, method.lower())(_path_of(route), {}, format="json")
                assert response.status_code < 500, (name, method, who, response.content[:300])
                body = response.json() if response.get("Content-Type") == "application/json" else {}
                code = (body.get("error") or {}).get("code")
                denied = response.status_code in (401, 403) and code in (
                    "permission_denied",
                    "not_authenticated",
                    "authentication_failed",
                )
                denied |= who == "nobody" and code == "tenant_not_found"  # a tenant not theirs
                if denied == (who in roles or (who == "nobody" and "-" in roles)):
                    wrong.append(f"{name} {method} {who}: {response.status_code} {code}")
    assert not wrong, "\n".join(wrong)


# --- the self-promotion path and the rules of membership management, explicitly ----------------


def _membership(user, tenant) -> Membership:
    return Membership.objects.get(user=user, tenant=tenant)


def _role_changes() -> int:
    return AuditEvent.objects.filter(action="membership.role_change").count()


def test_an_analyst_cannot_make_themselves_an_approver_in_the_admin(world):
    analyst, tenant = world["users"]["n"], world["tenant"]
    own = _membership(analyst, tenant)
    url = reverse("admin:jfintech_membership_change", args=[own.pk])
    response = _admin_client(analyst).post(url, {"role": Role.APPROVER})
    assert response.status_code == 403
    assert _membership(analyst, tenant).role == Role.ANALYST
    assert _role_changes() == 0


def test_an_analyst_cannot_make_themselves_an_approver_through_the_api(world):
    analyst, tenant = world["users"]["n"], world["tenant"]
    own = _membership(analyst, tenant)
    response = client_for(analyst).patch(
        f"/api/v1/memberships/{own.pk}/", {"role": "approver"}, format="json"
    )
    assert response.status_code == 403
    assert _membership(analyst, tenant).role == Role.ANALYST


def test_an_approver_cannot_grant_admin_anywhere(world):
    approver, analyst, tenant = world["users"]["p"], world["users"]["n"], world["tenant"]
    theirs = _membership(analyst, tenant)
    admin_url = reverse("admin:jfintech_membership_change", args=[theirs.pk])
    assert _admin_client(approver).post(admin_url, {"role": Role.ADMIN}).status_code == 403
    api = client_for(approver).patch(f"/api/v1/memberships/{theirs.pk}/", {"role": "admin"}, format="json")
    assert api.status_code == 403
    new_user = UserFactory(username="newcomer")
    add_url = reverse("admin:jfintech_membership_add")
    body = {"tenant": tenant.pk, "user": new_user.username, "role": Role.ADMIN}
    assert _admin_client(approver).post(add_url, body).status_code == 403
    assert _membership(analyst, tenant).role == Role.ANALYST
    assert not Membership.objects.filter(user=new_user).exists()


def test_a_tenant_admin_cannot_change_their_own_role(world):
    admin_user, tenant = world["users"]["a"], world["tenant"]
    member(tenant, Role.ADMIN)  # another admin: "the last admin" is not the reason
    own = _membership(admin_user, tenant)
    api = client_for(admin_user).patch(f"/api/v1/memberships/{own.pk}/", {"role": "analyst"}, format="json")
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "permission_denied"
    url = reverse("admin:jfintech_membership_change", args=[own.pk])
    page = _admin_client(admin_user).get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # read-only
    assert _admin_client(admin_user).post(url, {"role": Role.ANALYST}).status_code == 403
    assert _membership(admin_user, tenant).role == Role.ADMIN
    assert _role_changes() == 0


def test_a_tenant_admin_changes_a_role_and_the_audit_says_who_whom_from_and_to(world):
    admin_user, analyst, tenant = world["users"]["a"], world["users"]["n"], world["tenant"]
    theirs = _membership(analyst, tenant)
    url = reverse("admin:jfintech_membership_change", args=[theirs.pk])
    response = _admin_client(admin_user).post(url, {"role": Role.APPROVER})
    assert response.status_code == 302, response.content[:500]
    assert _membership(analyst, tenant).role == Role.APPROVER
    event = AuditEvent.objects.get(action="membership.role_change")
    assert (event.actor_kind, event.actor_id) == ("user", str(admin_user.pk))  # who
    assert (event.after["user_id"], event.after["username"]) == (analyst.pk, analyst.username)  # whom
    assert (event.before["role"], event.after["role"]) == (Role.ANALYST, Role.APPROVER)  # from, to
    assert (event.after["from_role"], event.after["to_role"]) == (Role.ANALYST, Role.APPROVER)


def test_a_tenant_admin_adds_a_member_by_username_in_the_admin(world):
    newcomer = UserFactory(username="newcomer")
    body = {"tenant": world["tenant"].pk, "user": "newcomer", "role": Role.APPROVER}
    response = _admin_client(world["users"]["a"]).post(reverse("admin:jfintech_membership_add"), body)
    assert response.status_code == 302, response.content[:500]
    assert _membership(newcomer, world["tenant"]).role == Role.APPROVER
    assert AuditEvent.objects.filter(action="membership.create").count() == 1


def test_the_services_refuse_whatever_the_surface(world):
    from jfintech.common.errors import ApplicationError

    tenant, users = world["tenant"], world["users"]
    target = _membership(users["n"], tenant)
    admin_key = services.api_key_create(
        tenant=tenant, actor=Actor.for_user(users["a"]), name="admin-key", role=Role.ADMIN
    ).key
    refused = [
        Actor.for_user(users["n"]),  # an analyst (on someone else's membership too)
        Actor.for_user(users["p"]),
        Actor.for_api_key(admin_key),  # a key, even with the admin role: managing people is a person's act
        Actor.for_user(users["nobody"]),
    ]
    for actor in refused:
        with pytest.raises(ApplicationError) as exc:
            services.membership_change_role(tenant=tenant, actor=actor, membership=target, role=Role.APPROVER)
        assert exc.value.code == "permission_denied", actor
        with pytest.raises(ApplicationError):
            services.membership_create(tenant=tenant, actor=actor, user=UserFactory(), role=Role.ANALYST)
        with pytest.raises(ApplicationError):
            services.membership_delete(tenant=tenant, actor=actor, membership=target)
    with pytest.raises(ApplicationError):  # an approver's key cannot mint an admin key either
        services.api_key_create(tenant=tenant, actor=Actor.for_user(users["p"]), name="x", role=Role.ADMIN)
    changed = services.membership_change_role(
        tenant=tenant, actor=Actor.for_user(users["s"]), membership=target, role=Role.APPROVER
    )
    assert changed.role == Role.APPROVER  # a superuser acts as admin in every tenant


def test_runs_batches_definitions_and_sources_are_read_only_to_analysts_and_approvers(world):
    from datetime import date, timedelta

    from django.utils import timezone

    from reconciliation.models import IngestionBatch
    from reconciliation.runs.models import Run
    from reconciliation.runs.tests.factories import definition

    tenant, users = world["tenant"], world["users"]
    defn = definition(tenant)
    source = defn.sources.first().source
    run = Run.objects.create(
        tenant=tenant,
        definition=defn,
        rule_version=defn.rule_versions.get(),
        kind=defn.kind,
        as_of=date(2026, 11, 20),
        date_from=date(2026, 11, 1),
        date_to=date(2026, 11, 20),
        trigger="api",
        deadline=timezone.now() + timedelta(hours=1),
    )
    batch = IngestionBatch.objects.create(tenant=tenant, source=source, sha256="0" * 64)
    pages = {
        "run": reverse("admin:reconciliation_run_change", args=[run.pk]),
        "batch": reverse("admin:reconciliation_ingestionbatch_change", args=[batch.pk]),
        "definition": reverse("admin:reconciliation_definition_change", args=[defn.pk]),
        "source": reverse("admin:reconciliation_datasource_change", args=[source.pk]),
    }
    editable_by_admin = {"definition", "source"}
    for who in ("n", "p", "a"):
        client = _admin_client(users[who])
        for name, url in pages.items():
            page = client.get(url)
            assert page.status_code == 200, (who, name)
            has_save = b'name="_save"' in page.content
            assert has_save == (who == "a" and name in editable_by_admin), (who, name)
            if not has_save:
                assert client.post(url, {}).status_code == 403, (who, name)
