from django.contrib import admin

from jfintech.health.models import PipelineCheck, PipelineCheckPart
from jfintech.observability.admin import TraceLinksAdminMixin
from jfintech.tenancy.admin import PlatformAdminMixin


class PipelineCheckPartInline(admin.TabularInline):
    model = PipelineCheckPart
    extra = 0
    can_delete = False
    readonly_fields = ["queue", "hostname", "pid", "completed_at"]


@admin.register(PipelineCheck)
class PipelineCheckAdmin(PlatformAdminMixin, TraceLinksAdminMixin, admin.ModelAdmin):
    """Read-only, superusers only: checks are started from the API or ``manage.py check_pipeline``."""

    list_display = ["id", "status", "created_at", "completed_at", "trace_links"]
    list_filter = ["status"]
    search_fields = ["trace_id"]
    readonly_fields = [
        "status",
        "requested_by",
        "created_at",
        "deadline",
        "completed_at",
        "trace_links",
        "error",
    ]
    exclude = ["trace_id"]
    inlines = [PipelineCheckPartInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
