"""Admin of the platform core; each subpackage registers its own models."""

from jfintech.api import admin as api_admin
from jfintech.audit import admin as audit_admin
from jfintech.health import admin as health_admin
from jfintech.tenancy import admin as tenancy_admin

__all__ = ["api_admin", "audit_admin", "health_admin", "tenancy_admin"]
