"""Writes for tenancy: tenants, memberships and API keys, each audited in its transaction."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date

from django.db import transaction
from django.utils import timezone

from jfintech import audit
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from jfintech.tenancy import permissions
from jfintech.tenancy.models import ApiKey, Membership, Role, Tenant

log = get_logger(__name__)

API_KEY_SCHEME = "Api-Key"


def tenant_snapshot(tenant: Tenant) -> dict:
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "timezone": tenant.timezone,
        "weekend_days": sorted(tenant.weekend_days or []),
        "holidays": sorted(tenant.holidays or []),
        "window_months_back": tenant.window_months_back,
        "window_months_ahead": tenant.window_months_ahead,
    }


def membership_snapshot(membership: Membership) -> dict:
    return {
        "user_id": membership.user_id,
        "username": membership.user.get_username(),
        "role": membership.role,
    }


def api_key_snapshot(key: ApiKey) -> dict:
    # Never the secret or its hash: the audit trail is readable by tenant admins.
    return {"name": key.name, "prefix": key.prefix, "role": key.role, "revoked_at": key.revoked_at}


def tenant_create(
    *,
    actor: Actor,
    slug: str,
    name: str,
    timezone_name: str = "UTC",
    weekend_days: list[int] | None = None,
    holidays: list[date] | None = None,
    window_months_back: int | None = None,
    window_months_ahead: int | None = None,
) -> Tenant:
    """A new tenant (a platform act). None keeps the model's default (Saturday/Sunday weekend, no
    holidays, a window of 24 months back and 3 ahead)."""
    permissions.require_platform(actor)
    with transaction.atomic():
        if Tenant.objects.filter(slug=slug).exists():
            raise ApplicationError(
                f"A tenant '{slug}' exists.", code="tenant_exists", status=409, extra={"field": "slug"}
            )
        tenant = Tenant(slug=slug, name=name, timezone=timezone_name)
        if weekend_days is not None:
            tenant.weekend_days = sorted(set(weekend_days))
        if holidays is not None:
            tenant.holidays = sorted(set(holidays))
        if window_months_back is not None:
            tenant.window_months_back = window_months_back
        if window_months_ahead is not None:
            tenant.window_months_ahead = window_months_ahead
        tenant.full_clean()
        tenant.save()
        audit.record(
            tenant=tenant, actor=actor, action="tenant.create", obj=tenant, after=tenant_snapshot(tenant)
        )
    return tenant


def tenant_update(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str | None = None,
    timezone_name: str | None = None,
    weekend_days: list[int] | None = None,
    holidays: list[date] | None = None,
    window_months_back: int | None = None,
    window_months_ahead: int | None = None,
) -> Tenant:
    """Change a tenant's settings (None leaves a field as it is); audited when anything changed."""
    permissions.require(tenant=tenant, actor=actor, area="tenant", verb="change")
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = tenant_snapshot(tenant)
        changes = {
            "name": name,
            "timezone": timezone_name,
            "weekend_days": sorted(set(weekend_days)) if weekend_days is not None else None,
            "holidays": sorted(set(holidays)) if holidays is not None else None,
            "window_months_back": window_months_back,
            "window_months_ahead": window_months_ahead,
        }
        for field, value in changes.items():
            if value is not None:
                setattr(tenant, field, value)
        tenant.full_clean()
        tenant.save()
        after = tenant_snapshot(tenant)
        if after != before:
            audit.record(
                tenant=tenant, actor=actor, action="tenant.update", obj=tenant, before=before, after=after
            )
    return tenant


def tenant_holiday_add(*, tenant: Tenant, actor: Actor, day: date) -> Tenant:
    with transaction.atomic():
        current = Tenant.objects.select_for_update().only("holidays").get(pk=tenant.pk)
        if day in current.holidays:
            raise ApplicationError(f"{day} is already a holiday.", code="holiday_exists", status=409)
        return tenant_update(tenant=tenant, actor=actor, holidays=[*current.holidays, day])


def _check_membership_manager(
    *, tenant: Tenant, actor: Actor, verb: str, membership: Membership | None, role: str | None
) -> None:
    """Only a tenant admin (a person, not a key) manages memberships; never their own, never above
    their own role (jfintech.tenancy.permissions). A refusal is logged loudly: who tried what."""
    try:
        actor_role = permissions.require(tenant=tenant, actor=actor, area="membership", verb=verb)
        if actor.kind == "system":
            return
        reason = permissions.membership_refusal(
            actor_role=actor_role,
            actor_user_id=actor.id if actor.kind == "user" else None,
            membership=membership,
            role=role,
        )
        if reason:
            raise ApplicationError(reason, code="permission_denied", status=403)
    except ApplicationError as exc:
        log.warning(
            "membership.change_refused",
            tenant=tenant.slug,
            actor=actor.display,
            verb=verb,
            membership_id=getattr(membership, "pk", None),
            from_role=getattr(membership, "role", None),
            to_role=role,
            reason=exc.message,
        )
        raise


def membership_create(*, tenant: Tenant, actor: Actor, user, role: str) -> Membership:
    _check_membership_manager(tenant=tenant, actor=actor, verb="add", membership=None, role=role)
    with transaction.atomic():
        if Membership.objects.filter(tenant=tenant, user=user).exists():
            raise ApplicationError(
                f"{user.get_username()} is already a member of {tenant.slug}.",
                code="membership_exists",
                status=409,
            )
        membership = Membership(tenant=tenant, user=user, role=role)
        membership.full_clean()
        membership.save()
        audit.record(
            tenant=tenant,
            actor=actor,
            action="membership.create",
            obj=membership,
            after=membership_snapshot(membership),
        )
    return membership


def _ensure_an_admin_remains(tenant: Tenant, leaving: Membership) -> None:
    others = Membership.objects.filter(tenant=tenant, role=Role.ADMIN).exclude(pk=leaving.pk)
    if leaving.role == Role.ADMIN and not others.exists():
        raise ApplicationError("A tenant keeps at least one admin.", code="last_admin", status=409)


def membership_change_role(*, tenant: Tenant, actor: Actor, membership: Membership, role: str) -> Membership:
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update().select_related("user").get(pk=membership.pk, tenant=tenant)
        )
        _check_membership_manager(tenant=tenant, actor=actor, verb="change", membership=membership, role=role)
        if membership.role == role:
            return membership
        if role != Role.ADMIN:
            _ensure_an_admin_remains(tenant, membership)
        before = membership_snapshot(membership)
        membership.role = role
        membership.full_clean()
        membership.save(update_fields=["role"])
        # Who (the event's actor), whom (user id and name), from and to: before/after, and named
        # in `after` so a reader of one event sees the whole change.
        audit.record(
            tenant=tenant,
            actor=actor,
            action="membership.role_change",
            obj=membership,
            before=before,
            after={**membership_snapshot(membership), "from_role": before["role"], "to_role": role},
        )
    return membership


def membership_delete(*, tenant: Tenant, actor: Actor, membership: Membership) -> None:
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update().select_related("user").get(pk=membership.pk, tenant=tenant)
        )
        _check_membership_manager(tenant=tenant, actor=actor, verb="delete", membership=membership, role=None)
        _ensure_an_admin_remains(tenant, membership)
        before = membership_snapshot(membership)
        audit.record(tenant=tenant, actor=actor, action="membership.delete", obj=membership, before=before)
        membership.delete()


@dataclass(frozen=True)
class CreatedApiKey:
    key: ApiKey
    plaintext: str  # "<prefix>.<secret>", shown once; only its hash is stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(
    *, tenant: Tenant, actor: Actor, name: str, role: str = Role.INTEGRATION, created_by=None
) -> CreatedApiKey:
    creator_role = permissions.require(tenant=tenant, actor=actor, area="api_key", verb="add")
    if creator_role is not None and permissions.RANK[role] > permissions.RANK[creator_role]:
        raise ApplicationError(
            f"A {creator_role} cannot create a key with the {role} role, which is above their own.",
            code="permission_denied",
            status=403,
        )
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with transaction.atomic():
        if ApiKey.objects.filter(tenant=tenant, name=name, revoked_at__isnull=True).exists():
            raise ApplicationError(
                f"An active API key named '{name}' exists.", code="api_key_exists", status=409
            )
        key = ApiKey(
            tenant=tenant,
            name=name,
            role=role,
            prefix=prefix,
            secret_hash=hash_secret(secret),
            created_by=created_by if getattr(created_by, "pk", None) else None,
        )
        key.full_clean()
        key.save()
        audit.record(
            tenant=tenant, actor=actor, action="api_key.create", obj=key, after=api_key_snapshot(key)
        )
    return CreatedApiKey(key=key, plaintext=f"{prefix}.{secret}")


def api_key_revoke(*, tenant: Tenant, actor: Actor, key: ApiKey) -> ApiKey:
    permissions.require(tenant=tenant, actor=actor, area="api_key", verb="revoke")
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=key.pk, tenant=tenant)
        if key.revoked_at is not None:
            return key  # revoking twice has one effect
        before = api_key_snapshot(key)
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit.record(
            tenant=tenant,
            actor=actor,
            action="api_key.revoke",
            obj=key,
            before=before,
            after=api_key_snapshot(key),
        )
    return key


def api_key_touch(*, key: ApiKey, min_interval_s: int = 60) -> None:
    """Record a key's last use, at most once a minute: one conditional UPDATE, not one per request.

    Usage metadata, not a change of configuration: not audited.
    """
    now = timezone.now()
    if key.last_used_at is not None and (now - key.last_used_at).total_seconds() < min_interval_s:
        return
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    key.last_used_at = now
