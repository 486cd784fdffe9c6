"""Models of the platform core, defined in their subpackages and registered here."""

from jfintech.api.models import IdempotencyKey
from jfintech.audit.models import AuditChainHead, AuditEvent
from jfintech.health.models import PipelineCheck, PipelineCheckPart
from jfintech.tenancy.models import ApiKey, Membership, Tenant

__all__ = [
    "ApiKey",
    "AuditChainHead",
    "AuditEvent",
    "IdempotencyKey",
    "Membership",
    "PipelineCheck",
    "PipelineCheckPart",
    "Tenant",
]
