"""The one permission model: what each tenant role may do, per area (docs/tenancy.md).

Every surface asks this table and keeps no list of its own:

- services call ``require(tenant=..., actor=..., area=..., verb=...)`` (membership and API-key
  management do; the four-eyes services check the approver role themselves),
- the admin's ``has_*_permission``, its actions and its custom views ask ``may`` through
  ``jfintech.tenancy.admin.TenantScopedAdminMixin`` (``permission_area`` on each ModelAdmin),
- the API's permission classes are ``jfintech.api.permissions.tenant_may(area, verb)``.

A superuser acts as ``admin`` in every tenant (so four-eyes still needs a person with the
``approver`` role) and alone manages the platform (tenants' creation, users, beat, pipeline checks).
An API key acts with its own role and never manages memberships or keys (``PEOPLE_ONLY``).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Membership, Role

ANALYST, APPROVER, ADMIN, INTEGRATION = Role.ANALYST, Role.APPROVER, Role.ADMIN, Role.INTEGRATION
EVERYONE = frozenset(Role.values)
DESK = frozenset({ANALYST, APPROVER, ADMIN})  # the people who work breaks

# area -> verb -> the roles that may. A verb not listed is allowed to no one; an area or verb that
# is asked for but not listed is a programming error (ImproperlyConfigured), never a silent "no".
# Admin pages use view/add/change/delete; other verbs are actions (admin actions, API endpoints).
PERMISSIONS: dict[str, dict[str, frozenset[str]]] = {
    "tenant": {"view": EVERYONE, "change": frozenset({ADMIN})},
    "membership": {v: frozenset({ADMIN}) for v in ("view", "add", "change", "delete")},
    "api_key": {v: frozenset({ADMIN}) for v in ("view", "add", "revoke")},
    "audit": {"view": frozenset({ADMIN, APPROVER})},
    "idempotency_key": {"view": frozenset({ADMIN})},
    "source": {
        "view": EVERYONE,
        "add": frozenset({ADMIN}),
        "change": frozenset({ADMIN}),
        "upload": frozenset({ADMIN, INTEGRATION}),
    },
    "batch": {"view": EVERYONE, "reverse": frozenset({ADMIN})},
    "definition": {"view": EVERYONE, "add": frozenset({ADMIN}), "change": frozenset({ADMIN})},
    "rule_version": {"view": EVERYONE, "approve": frozenset({APPROVER})},
    "run": {"view": EVERYONE, "start": frozenset({ANALYST, ADMIN, INTEGRATION}), "fail": frozenset({ADMIN})},
    "break": {"view": EVERYONE},
    "match": {"view": EVERYONE, "decide": DESK},
    "simulation": {"view": EVERYONE, "add": DESK},
    # An integration reads cases (the state of the breaks it loaded, for its own systems), never works
    # them: view is everyone's, work and approve the desk's (docs/tenancy.md, Decisions).
    "case": {"view": EVERYONE, "work": DESK, "approve": frozenset({APPROVER})},
    "approval": {"view": DESK},
    "root_cause": {"view": DESK, "add": frozenset({ADMIN, APPROVER}), "change": frozenset({ADMIN, APPROVER})},
    "approval_threshold": {"view": DESK, **{v: frozenset({ADMIN}) for v in ("add", "change", "delete")}},
    "sla_webhook": {"view": DESK, "add": frozenset({ADMIN}), "change": frozenset({ADMIN})},
    "webhook_delivery": {"view": DESK},
    # Reports (docs/reporting.md): people who work or oversee breaks read and export them; an
    # auditor pack (which signs with the audit chain) is made by an approver or an admin.
    "report": {
        "view": DESK,
        "generate": DESK,
        "pack": frozenset({APPROVER, ADMIN}),
    },
    # Scheduled delivery: the desk sees the subscriptions; an approver or an admin adds and changes
    # them (deactivating is a change: the active flag).
    "report_subscription": {
        "view": DESK,
        "add": frozenset({APPROVER, ADMIN}),
        "change": frozenset({APPROVER, ADMIN}),
    },
    "report_delivery": {"view": DESK},
    # Regulatory filings (docs/filings.md): the compliance desk. Preparing is the analyst's, approving
    # the approver's (never the preparer: four eyes in filings.services), transmitting the admin's.
    "filing": {
        "view": DESK,
        "refer": DESK,  # an analyst refers break cases to compliance (a SAR draft)
        "prepare": frozenset({ANALYST, ADMIN}),
        "approve": frozenset({APPROVER}),
        "package": frozenset({ANALYST, APPROVER, ADMIN}),
        "transmit": frozenset({ADMIN, INTEGRATION}),
    },
    "filing_config": {"view": DESK, "add": frozenset({ADMIN}), "change": frozenset({ADMIN})},
    # Parties and cash transactions are loaded through ingestion (area "source", verb "upload").
    "filing_data": {"view": DESK},
    "filing_package": {"view": DESK},
}
# Managing who may do what is a person's act: an API key never does it, whatever its role.
PEOPLE_ONLY = frozenset({"membership", "api_key"})

# No one grants (or changes the role of someone holding) a role above their own. Integration is a
# machine role with no say over people: it ranks with the analyst (it loads and starts runs, it
# decides nothing), so an analyst-level grant is its ceiling, and it holds no membership verb.
RANK = {ANALYST: 1, INTEGRATION: 1, APPROVER: 2, ADMIN: 3}


def verbs(area: str) -> dict[str, frozenset[str]]:
    try:
        return PERMISSIONS[area]
    except KeyError:
        raise ImproperlyConfigured(f"No permission area '{area}' in jfintech.tenancy.permissions.") from None


def may(role: str | None, area: str, verb: str, *, api_key: bool = False) -> bool:
    """Whether ``role`` may ``verb`` in ``area`` (``area.verb`` in ``verb`` names another area)."""
    if "." in verb:
        area, verb = verb.split(".", 1)
    table = verbs(area)
    if verb not in table and verb not in ("add", "change", "delete", "view"):
        raise ImproperlyConfigured(f"No verb '{verb}' in permission area '{area}'.")
    if role is None or (api_key and area in PEOPLE_ONLY):
        return False
    return role in table.get(verb, frozenset())


def actor_role(tenant, actor: Actor) -> str | None:
    """The role an actor acts with in ``tenant``: a user's membership (superuser: admin), a key's
    own role (in its tenant only). System actors are not asked: they are the platform itself."""
    from django.contrib.auth import get_user_model

    from jfintech.tenancy.models import ApiKey
    from jfintech.tenancy.selectors import role_of

    if actor.kind == "api_key":
        return ApiKey.objects.filter(pk=actor.id, tenant=tenant).values_list("role", flat=True).first()
    user = get_user_model().objects.filter(pk=actor.id).first() if actor.kind == "user" else None
    return role_of(user, tenant) if user is not None else None


def require(*, tenant, actor: Actor, area: str, verb: str) -> str | None:
    """Raise 403 ``permission_denied`` unless ``actor`` may; returns the actor's role (None: system)."""
    if actor.kind == "system":
        return None
    role = actor_role(tenant, actor)
    if not may(role, area, verb, api_key=actor.kind == "api_key"):
        raise ApplicationError(
            f"Your role in this tenant ({role or 'none'}) may not {verb} {area.replace('_', ' ')}s.",
            code="permission_denied",
            status=403,
            extra={"area": area, "verb": verb, "role": role},
        )
    return role


def membership_refusal(
    *, actor_role: str | None, actor_user_id, membership: Membership | None, role: str | None
) -> str | None:
    """Why a membership manager may not give ``membership`` (None: a new one) the ``role`` (None:
    removing it), or None when they may. Asked by the services and by the admin's change form."""
    if membership is not None and actor_user_id is not None and str(membership.user_id) == str(actor_user_id):
        return "No one changes or removes their own membership; another admin must."
    ceiling = RANK.get(actor_role, 0)
    if role is not None and RANK[role] > ceiling:
        return f"A {actor_role} cannot grant the {role} role, which is above their own."
    if membership is not None and RANK[membership.role] > ceiling:
        return f"A {actor_role} cannot change the membership of a {membership.role}."
    return None


def require_platform(actor: Actor) -> None:
    """Platform acts (creating a tenant): a superuser or the platform itself, never a tenant role."""
    from django.contrib.auth import get_user_model

    if actor.kind == "system":
        return
    if actor.kind == "user" and get_user_model().objects.filter(pk=actor.id, is_superuser=True).exists():
        return
    raise ApplicationError("Only a superuser creates tenants.", code="permission_denied", status=403)
