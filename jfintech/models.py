"""Models of the platform core, defined in their subpackages and registered here."""

from jfintech.audit.models import AuditEvent
from jfintech.health.models import PipelineCheck, PipelineCheckPart
from jfintech.tenancy.models import Membership, Tenant

__all__ = ["AuditEvent", "Membership", "PipelineCheck", "PipelineCheckPart", "Tenant"]
