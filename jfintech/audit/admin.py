from django.contrib import admin

from jfintech.audit.models import AuditEvent
from jfintech.tenancy.admin import TenantScopedAdminMixin


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Read-only (the table gives only "view"): the trail is append-only in the database too."""

    permission_area = "audit"

    list_display = ["occurred_at", "tenant", "actor_display", "action", "object_type", "object_id"]
    list_filter = ["action", "actor_kind", "object_type", "tenant", "occurred_at"]
    search_fields = ["action", "object_id", "actor_display", "request_id", "trace_id"]
    date_hierarchy = "occurred_at"
    list_select_related = ["tenant"]
    show_full_result_count = False  # no COUNT(*) over the whole trail on every page

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
