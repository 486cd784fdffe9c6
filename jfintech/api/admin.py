from django.contrib import admin

from jfintech.api.models import IdempotencyKey
from jfintech.tenancy.admin import TenantScopedAdminMixin


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "tenant", "principal", "method", "path", "key", "response_status"]
    list_filter = ["response_status", "method"]
    search_fields = ["key", "path", "principal"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
