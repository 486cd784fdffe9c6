"""Admin for tenancy, and ``TenantScopedAdminMixin`` for every domain ModelAdmin.

Usage::

    from jfintech.tenancy.admin import TenantScopedAdminMixin

    @admin.register(Run)
    class RunAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
        permission_area = "run"                 # the area of jfintech.tenancy.permissions.PERMISSIONS
        action_verbs = {"fail_runs": "fail"}    # every admin action's verb ("area.verb": another area)
        tenant_field = "tenant"                 # the lookup path to the Tenant (default "tenant")

What a staff user sees and may do is the permission table's answer for their role in the row's
tenant (superusers act as admin in every tenant): the list, the change form (read-only without
"change": no SAVE button), add, delete, each action (hidden, and refused if posted) and the custom
views that ask ``self.may(request, verb, obj)``. Django's model permissions are not consulted: one
model, not two. Rows are limited to the tenants where the role may view them, as are the choices
of every foreign key to a tenant-owned model; the tenant field is limited on add and read-only on
change (moving a row between tenants is never an edit). A staff user without a membership sees
nothing tenant-owned. Models of the platform (users, groups, beat, pipeline checks) use
``PlatformAdminMixin``: superusers only.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured, PermissionDenied

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy import permissions, services
from jfintech.tenancy.models import ApiKey, Membership, Role, Tenant


def _tenant_path_of(model) -> str | None:
    """The lookup path from ``model`` to its tenant, for the usual shapes (None if it has none)."""
    if model is Tenant:
        return "pk"
    try:
        field = model._meta.get_field("tenant")
    except Exception:
        return None
    return "tenant" if field.is_relation and field.related_model is Tenant else None


def roles_by_tenant(request) -> dict[int, str]:
    """The staff user's role per tenant id, once per request (superusers: admin of every tenant)."""
    if not hasattr(request, "_jf_roles_by_tenant"):
        user = request.user
        if not (user.is_active and user.is_staff):
            roles = {}
        elif user.is_superuser:
            roles = dict.fromkeys(Tenant.objects.values_list("pk", flat=True), Role.ADMIN)
        else:
            roles = dict(Membership.objects.filter(user=user).values_list("tenant_id", "role"))
        request._jf_roles_by_tenant = roles
    return request._jf_roles_by_tenant


class TenantScopedAdminMixin:
    tenant_field = "tenant"
    permission_area: str = ""
    action_verbs: dict[str, str] = {}

    # --- the permission table, asked per tenant -------------------------------------------------

    def _area(self) -> str:
        if not self.permission_area:
            raise ImproperlyConfigured(f"{type(self).__name__} names no permission_area.")
        return self.permission_area

    def _tenant_id_of(self, obj) -> int | None:
        if self.tenant_field == "pk":
            return obj.pk
        *path, last = self.tenant_field.split("__")
        for part in path:
            obj = getattr(obj, part)
        return getattr(obj, f"{last}_id")

    def tenants_where(self, request, verb: str) -> list[int]:
        area = self._area()
        return [t for t, role in roles_by_tenant(request).items() if permissions.may(role, area, verb)]

    def may(self, request, verb: str, obj=None) -> bool:
        """``verb`` on ``obj`` (its tenant's role), or in some tenant when ``obj`` is None."""
        if obj is None:
            return bool(self.tenants_where(request, verb))
        role = roles_by_tenant(request).get(self._tenant_id_of(obj))
        return permissions.may(role, self._area(), verb)

    def has_module_permission(self, request):
        return any(self.may(request, verb) for verb in ("view", "add", "change", "delete"))

    def has_view_permission(self, request, obj=None):
        return self.may(request, "view", obj) or self.may(request, "change", obj)

    def has_add_permission(self, request):
        return self.may(request, "add")

    def has_change_permission(self, request, obj=None):
        return self.may(request, "change", obj)

    def has_delete_permission(self, request, obj=None):
        return self.may(request, "delete", obj)

    def get_actions(self, request):
        # An action missing from action_verbs is a programming error, not an action for everyone.
        actions = super().get_actions(request)
        for name in actions:
            if name != "delete_selected" and name not in self.action_verbs:
                raise ImproperlyConfigured(f"{type(self).__name__}.action_verbs has no verb for '{name}'.")
        return {
            name: action
            for name, action in actions.items()
            if name == "delete_selected" or self.may(request, self.action_verbs[name])
        }

    def require(self, request, verb: str, obj=None) -> None:
        """For custom admin views: 403 unless the table allows ``verb`` (on ``obj``)."""
        if not self.may(request, verb, obj):
            raise PermissionDenied

    # --- rows and choices limited to the tenants where the role may see them -------------------

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.tenant_field}__in": self.tenants_where(request, "view")})

    def _limit_choices(self, db_field, request, kwargs):
        path = _tenant_path_of(db_field.related_model)
        if path is not None and not request.user.is_superuser:
            base = kwargs.get("queryset", db_field.related_model._default_manager.all())
            tenants = self.tenants_where(request, "add" if path == "pk" else "view")
            kwargs["queryset"] = base.filter(**{f"{path}__in": tenants})
        return kwargs

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs = self._limit_choices(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs = self._limit_choices(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        field_names = {f.name for f in self.model._meta.concrete_fields}
        if obj is not None and self.tenant_field in field_names and self.tenant_field not in readonly:
            readonly.append(self.tenant_field)
        return readonly


class PlatformAdminMixin:
    """The platform's own models (users, groups, beat schedules, pipeline checks): superusers only,
    whatever Django model permissions a staff user holds."""

    def _superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._superuser(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request)

    def has_add_permission(self, request, *args):
        return self._superuser(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return self._superuser(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._superuser(request) and super().has_delete_permission(request, obj)

    def get_actions(self, request):
        return super().get_actions(request) if self._superuser(request) else {}


def _actor(request) -> Actor:
    return Actor.for_user(request.user)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    tenant_field = "pk"
    permission_area = "tenant"
    list_display = ["slug", "name", "timezone", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "slug"] if obj is not None else readonly

    def has_add_permission(self, request):
        return request.user.is_superuser  # a platform act; tenants are never deleted (no verb)

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
    # A username typed in, as in the API: a tenant admin does not browse the platform's users.
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True),
        to_field_name="username",
        widget=forms.TextInput,
        label="Username",
    )

    class Meta:
        model = Membership
        fields = ["tenant", "user", "role"]


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "membership"
    form = MembershipForm
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug"]

    def _refusal(self, request, obj, role=None) -> str | None:
        """The services' rule (never one's own membership, never above one's role), asked early
        so the form is read-only instead of failing on save."""
        role_here = roles_by_tenant(request).get(obj.tenant_id)
        return permissions.membership_refusal(
            actor_role=role_here, actor_user_id=request.user.pk, membership=obj, role=role
        )

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (
            obj is None or not self._refusal(request, obj)
        )

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (
            obj is None or not self._refusal(request, obj)
        )

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
            if exc.status == 403:
                raise PermissionDenied(exc.message) from exc  # the admin's view rolls back
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
    permission_area = "api_key"  # no "change" or "delete" verb: a key is revoked, never edited
    action_verbs = {"revoke_selected": "revoke"}
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


PROJECT_APPS = ("jfintech", "reconciliation", "exceptions", "reporting", "filings")


def _platform_only_for_other_apps() -> None:
    """Admins of other apps registered so far (auth's users and groups, django-celery-beat) become
    superuser-only: a Django model permission given to a staff user must not open them (a tenant
    admin who could edit users could make themselves superuser). Project models name their area."""
    for model, model_admin in list(admin.site._registry.items()):
        if model._meta.app_label in PROJECT_APPS or isinstance(model_admin, PlatformAdminMixin):
            continue
        admin.site.unregister(model)
        admin.site.register(
            model, type(type(model_admin).__name__, (PlatformAdminMixin, type(model_admin)), {})
        )


_platform_only_for_other_apps()
__all__ = ["PlatformAdminMixin", "Role", "TenantScopedAdminMixin"]
