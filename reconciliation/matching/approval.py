"""Four-eyes on configuration: a published rule version is pending until an approver other than its
author approves it; runs use the latest approved version (reconciliation.runs.services).

The approver is a person holding the ``approver`` role in the tenant (as for the exceptions desk's
write-offs: ``jfintech.tenancy.selectors.role_of``), never the author: compared by principal
(``user:7``, ``api_key:3``), and a check constraint on the table says the same.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from jfintech import audit
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from jfintech.tenancy import permissions
from jfintech.tenancy.models import Role
from jfintech.tenancy.selectors import role_of
from reconciliation.runs.models import RuleVersion, RuleVersionStatus

log = get_logger(__name__)

APPROVER_ROLES = frozenset({Role.APPROVER})
# Who "approves" version 1, created with its definition (docs/matching-depth.md says why).
BOOTSTRAP = Actor.for_system("definition-created")


def principal(actor: Actor) -> str:
    return f"{actor.kind}:{actor.id}"


def bootstrap_fields(actor: Actor) -> dict:
    """The approval fields of a definition's version 1."""
    return {
        "status": RuleVersionStatus.APPROVED,
        "author_principal": principal(actor),
        "decided_by": BOOTSTRAP.display,
        "decided_by_principal": principal(BOOTSTRAP),
        "decided_at": timezone.now(),
    }


def _snapshot(version: RuleVersion) -> dict:
    return {
        "version": version.version,
        "status": version.status,
        "author": version.created_by,
        "decided_by": version.decided_by,
        "note": version.decision_note,
    }


def rule_version_decide(
    *, tenant, actor: Actor, user, version_id: int, approve: bool, note: str = ""
) -> RuleVersion:
    """Approve or reject a pending rule version. Approving makes it the version the next run uses
    (unless a later version is approved already: then it is refused as superseded)."""
    with transaction.atomic():
        permissions.require(tenant=tenant, actor=actor, area="rule_version", verb="approve")
        version = (
            RuleVersion.objects.select_for_update()
            .select_related("definition")
            .filter(tenant=tenant, pk=version_id)
            .first()
        )
        if version is None:
            raise ApplicationError(
                f"No rule version {version_id} in this tenant.", code="not_found", status=404
            )
        if version.status != RuleVersionStatus.PENDING:
            raise ApplicationError(
                f"Rule version {version.label} is {version.status}, not pending.",
                code="not_pending",
                status=409,
            )
        role = role_of(user, tenant) if user is not None else None
        if role not in APPROVER_ROLES:
            raise ApplicationError(
                "Only a person with the approver role can approve or reject a rule version.",
                code="approver_role_required",
                extra={"role": role},
                status=403,
            )
        if principal(actor) == version.author_principal:
            raise ApplicationError(
                "Four-eyes: the author of a rule version cannot also approve or reject it.",
                code="author_cannot_approve",
                status=403,
            )
        if (
            approve
            and RuleVersion.objects.filter(
                definition_id=version.definition_id,
                status=RuleVersionStatus.APPROVED,
                version__gt=version.version,
            ).exists()
        ):
            raise ApplicationError(
                f"A later rule version than {version.label} is approved already.",
                code="superseded",
                status=409,
            )
        before = _snapshot(version)
        version.status = RuleVersionStatus.APPROVED if approve else RuleVersionStatus.REJECTED
        version.decided_by, version.decided_by_principal = actor.display, principal(actor)
        version.decided_at, version.decision_note = timezone.now(), note
        version.save(
            update_fields=["status", "decided_by", "decided_by_principal", "decided_at", "decision_note"]
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="recon_rules.approved" if approve else "recon_rules.rejected",
            obj=version,
            before=before,
            after=_snapshot(version) | {"definition_id": version.definition_id, "rules": version.rules},
        )
    log.info(
        "recon_rules_decided",
        definition_id=version.definition_id,
        version=version.version,
        status=version.status,
    )
    return version
