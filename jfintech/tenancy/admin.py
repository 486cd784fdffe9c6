"""Admin for tenancy, and ``TenantScopedAdminMixin`` for every domain ModelAdmin.

Usage::

    from jfintech.tenancy.admin import TenantScopedAdminMixin

    @admin.register(Source)
    class SourceAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
        tenant_field = "tenant"          # the lookup path to the Tenant (default "tenant")
        ...

A staff user sees and edits only rows of tenants they are a member of (superusers see all):
the changelist, the change form (another tenant's id is a 404-like "does not exist"), the
choices of every foreign key to a tenant-owned model, and the tenant field itself (limited on
add, read-only on change: moving a row between tenants is never an edit).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy import services
from jfintech.tenancy.models import ApiKey, Membership, Role, Tenant
from jfintech.tenancy.selectors import tenants_for_user


def _tenant_path_of(model) -> str | None:
    """The lookup path from ``model`` to its tenant, for the usual shapes (None if it has none)."""
    if model is Tenant:
        return "pk"
    try:
        field = model._meta.get_field("tenant")
    except Exception:
        return None
    return "tenant" if field.is_relation and field.related_model is Tenant else None


class TenantScopedAdminMixin:
    tenant_field = "tenant"

    def _user_tenants(self, request):
        return tenants_for_user(request.user)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.tenant_field}__in": self._user_tenants(request)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            path = _tenant_path_of(db_field.related_model)
            if path is not None:
                base = kwargs.get("queryset", db_field.related_model._default_manager.all())
                kwargs["queryset"] = base.filter(**{f"{path}__in": self._user_tenants(request)})
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            path = _tenant_path_of(db_field.related_model)
            if path is not None:
                base = kwargs.get("queryset", db_field.related_model._default_manager.all())
                kwargs["queryset"] = base.filter(**{f"{path}__in": self._user_tenants(request)})
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        field_names = {f.name for f in self.model._meta.concrete_fields}
        if obj is not None and self.tenant_field in field_names and self.tenant_field not in readonly:
            readonly.append(self.tenant_field)
        return readonly


def _actor(request) -> Actor:
    return Actor.for_user(request.user)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    tenant_field = "pk"
    list_display = ["slug", "name", "timezone", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "slug"] if obj is not None else readonly

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False  # tenants own audit history; they are never deleted from a form

    def save_model(self, request, obj, form, change):
        if change:
            services.tenant_update(
                tenant=obj,
                actor=_actor(request),
                name=obj.name,
                timezone_name=obj.timezone,
                weekend_days=obj.weekend_days,
                holidays=obj.holidays,
                window_months_back=obj.window_months_back,
                window_months_ahead=obj.window_months_ahead,
            )
        else:
            created = services.tenant_create(
                actor=_actor(request),
                slug=obj.slug,
                name=obj.name,
                timezone_name=obj.timezone,
                weekend_days=obj.weekend_days,
                holidays=obj.holidays,
            )
            obj.pk = created.pk


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["tenant", "user", "role"]


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = MembershipForm
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "user"] if obj is not None else readonly

    def save_model(self, request, obj, form, change):
        try:
            if change:
                services.membership_change_role(
                    tenant=obj.tenant, actor=_actor(request), membership=obj, role=obj.role
                )
            else:
                created = services.membership_create(
                    tenant=obj.tenant, actor=_actor(request), user=obj.user, role=obj.role
                )
                obj.pk = created.pk
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def delete_model(self, request, obj):
        services.membership_delete(tenant=obj.tenant, actor=_actor(request), membership=obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("tenant"):
            self.delete_model(request, membership)


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "role"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "role", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role", "tenant", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    actions = ["revoke_selected"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "role"]
        return ["tenant", "name", "role", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return self.get_fields(request, obj)  # a key is replaced, never edited

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the audit trail refers to the key

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = services.api_key_create(
            tenant=obj.tenant, actor=_actor(request), name=obj.name, role=obj.role, created_by=request.user
        )
        obj.pk = created.key.pk
        messages.warning(request, f"API key created. Copy it now, it is not shown again: {created.plaintext}")

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request, queryset):
        for key in queryset.select_related("tenant"):
            services.api_key_revoke(tenant=key.tenant, actor=_actor(request), key=key)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


def _user_admin_has_search() -> None:
    # autocomplete_fields on Membership.user needs the user admin to define search_fields.
    user_admin = admin.site._registry.get(get_user_model())
    if user_admin is not None and not user_admin.search_fields:
        user_admin.search_fields = ["username", "email"]


_user_admin_has_search()
__all__ = ["Role", "TenantScopedAdminMixin"]
