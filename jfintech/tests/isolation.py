"""Isolation registrations of the platform core's endpoints (see jfintech.testing.isolation)."""

from jfintech.audit import Actor, record
from jfintech.tenancy import services
from jfintech.tenancy.models import Role
from jfintech.testing.isolation import platform_endpoint, tenant_object
from jfintech.tests.factories import MembershipFactory

# Pipeline checks prove the platform (web, broker, workers): staff only, no tenant.
platform_endpoint("pipeline-check-list", "pipeline-check-detail")
# Tenants are created by the platform (superusers), never by a tenant's own admin or key.
platform_endpoint("tenant-list")


@tenant_object("membership-detail", bodies={"membership-detail": {"role": "analyst"}})
def a_membership(tenant) -> dict:
    return {"membership_id": MembershipFactory(tenant=tenant, role=Role.APPROVER).pk}


@tenant_object("api-key-detail", "api-key-revoke")
def an_api_key(tenant) -> dict:
    created = services.api_key_create(tenant=tenant, actor=Actor.for_system("test"), name="isolation")
    return {"key_id": created.key.pk}


@tenant_object("audit-event-detail")
def an_audit_event(tenant) -> dict:
    from django.db import transaction

    with transaction.atomic():
        event = record(tenant=tenant, actor=Actor.for_system("test"), action="isolation.probe")
    return {"event_id": event.pk}
