from django.contrib import admin

from jfintech.api.models import IdempotencyKey
from jfintech.tenancy.admin import TenantScopedAdminMixin


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "idempotency_key"  # read-only: keys expire on their own (purge task)
    list_display = ["created_at", "tenant", "principal", "method", "path", "key", "response_status"]
    list_filter = ["response_status", "method"]
    search_fields = ["key", "path", "principal"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
