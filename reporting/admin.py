"""Reports in the admin: an index per tenant, each report on a page (filters, SVG charts, exports),
and the generated artifacts (read-only; downloaded, never edited). Every page asks the permission
table (area "report") for the staff user's role in the tenant the page is about."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.safestring import mark_safe

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy import calendar, permissions
from jfintech.tenancy.admin import TenantScopedAdminMixin, roles_by_tenant
from jfintech.tenancy.models import Tenant
from reconciliation.matching import selectors as matching_selectors
from reconciliation.runs import selectors as run_selectors
from reporting import reports, services, storage, surfaces
from reporting.models import ReportArtifact, ReportDelivery, ReportSubscription
from reporting.render import report_body_html


def _int(value) -> int | None:
    return int(value) if value and value.isdigit() and int(value) < 2**63 else None


@admin.register(ReportArtifact)
class ReportArtifactAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "report"
    list_display = ["filename", "kind", "tenant", "size", "sha256", "generated_at", "generated_by"]
    list_filter = ["kind", "format"]
    exclude = ["content"]
    readonly_fields = [
        "kind",
        "format",
        "filename",
        "sha256",
        "size",
        "generator_version",
        "filters",
        "inputs_as_of",
        "generated_at",
        "generated_by",
        "created_at",
        "download",
    ]

    @admin.display(description="file")
    def download(self, obj):
        from django.urls import reverse
        from django.utils.html import format_html

        url = reverse("admin:reporting_reportartifact_download", args=[obj.pk])
        return format_html('<a href="{}">download {}</a>', url, obj.filename)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("reports/", view(self.index_view), name="reporting_reportartifact_reports"),
            path("reports/run/<int:run_id>/", view(self.run_view), name="reporting_reportartifact_run"),
            path("reports/breaks/", view(self.breaks_view), name="reporting_reportartifact_breaks"),
            path("reports/pack/", view(self.pack_view), name="reporting_reportartifact_pack"),
            path("reports/<str:kind>/", view(self.report_view), name="reporting_reportartifact_report"),
            path(
                "<int:object_id>/download/",
                view(self.download_view),
                name="reporting_reportartifact_download",
            ),
            *super().get_urls(),
        ]

    # --- which tenant a page is about, and whether the role may -------------------------------

    def _tenants(self, request) -> list[Tenant]:
        ids = self.tenants_where(request, "view")
        return list(Tenant.objects.filter(pk__in=ids).order_by("slug"))

    def _tenant(self, request) -> Tenant:
        tenants = self._tenants(request)
        slug = request.GET.get("tenant")
        chosen = (
            next((t for t in tenants if t.slug == slug), None) if slug else (tenants[0] if tenants else None)
        )
        if chosen is None:
            raise PermissionDenied
        return chosen

    def index_view(self, request):
        tenants = self._tenants(request)
        if not tenants:
            raise PermissionDenied
        for t in tenants:
            t.recent_runs = list(run_selectors.runs_for_tenant(tenant=t).order_by("-id")[:10])
            t.definitions = list(run_selectors.definitions_for_tenant(tenant=t))
            t.may_pack = permissions.may(roles_by_tenant(request).get(t.pk), "report", "pack")
            today = calendar.tenant_today(t)
            t.statements = [
                (d, account, currency)
                for d in run_selectors.definitions_for_tenant(tenant=t)
                for account, currency in matching_selectors.statement_accounts(
                    tenant=t, definition=d, date_from=today - timedelta(days=62), date_to=today
                )
            ]
        context = {**self.admin_site.each_context(request), "title": "Reports", "tenants": tenants}
        return TemplateResponse(request, "admin/reporting/index.html", context)

    def _page(self, request, kind: str, **kwargs):
        tenant = self._tenant(request)
        try:
            export = surfaces.export_of(request.GET)
            report = surfaces.build(kind, tenant=tenant, params=request.GET, user=request.user, **kwargs)
        except ApplicationError as exc:
            return HttpResponse(str(exc), status=exc.status, content_type="text/plain")
        if export in ("pdf", "csv", "xlsx"):
            return surfaces.file_response(report, export)
        query = request.GET.copy()
        query.pop("export", None)
        context = {
            **self.admin_site.each_context(request),
            "title": report.title,
            "report": report,
            "kind": kind,
            "tenant": tenant,
            "tenants": self._tenants(request),
            "params": {
                k: request.GET.get(k, "")
                for k in ("by", "from", "to", "at", "definition", "account", "currency")
            },
            "aging_by": reports.AGING_BY,
            "query": query.urlencode(),
            "body": mark_safe(report_body_html(report)),  # noqa: S308 (every value is escaped by report_body_html)
        }
        return TemplateResponse(request, "admin/reporting/report_page.html", context)

    def report_view(self, request, kind: str):
        if kind not in ("aging", "trends", "inventory", "statement"):
            raise PermissionDenied
        return self._page(request, kind)

    def run_view(self, request, run_id: int):
        return self._page(request, "run", run_id=run_id)

    def breaks_view(self, request):
        tenant = self._tenant(request)
        try:
            return surfaces.cases_export(tenant=tenant, params=request.GET, user=request.user)
        except ApplicationError as exc:
            return HttpResponse(str(exc), status=exc.status, content_type="text/plain")

    def pack_view(self, request):
        """POST: generate an auditor pack (approver or admin), store it, go to the artifact."""
        if request.method != "POST":
            raise PermissionDenied
        tenant = self._tenant(request)
        if not permissions.may(roles_by_tenant(request).get(tenant.pk), "report", "pack"):
            raise PermissionDenied
        definition = run_selectors.definition_get(
            tenant=tenant, definition_id=_int(request.POST.get("definition"))
        )
        dates = [surfaces.parse_date_or_none(request.POST.get(k)) for k in ("from", "to")]
        if definition is None or None in dates:
            messages.error(request, "Choose a definition and a period (from, to).")
            return redirect(reverse("admin:reporting_reportartifact_reports"))
        try:
            artifact = services.pack_generate(
                tenant=tenant,
                actor=Actor.for_user(request.user),
                user=request.user,
                definition=definition,
                date_from=dates[0],
                date_to=dates[1],
            )
        except ApplicationError as exc:
            messages.error(request, str(exc))
            return redirect(reverse("admin:reporting_reportartifact_reports"))
        messages.success(request, f"Auditor pack {artifact.filename} generated (SHA-256 {artifact.sha256}).")
        return redirect(reverse("admin:reporting_reportartifact_change", args=[artifact.pk]))

    def download_view(self, request, object_id: int):
        artifact = ReportArtifact.objects.filter(pk=object_id).first()
        if artifact is None or not permissions.may(
            roles_by_tenant(request).get(artifact.tenant_id), "report", "view"
        ):
            raise PermissionDenied
        response = StreamingHttpResponse(
            storage.artifact_chunks(artifact), content_type="application/octet-stream"
        )
        response["Content-Disposition"] = f'attachment; filename="{artifact.filename}"'
        response["Content-Length"] = str(artifact.size)
        return response


class RecipientsField(forms.CharField):
    """Email addresses, one a line (or comma-separated); each is checked by the service."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 60})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value):
        return [a.strip() for a in (value or "").replace(",", "\n").splitlines() if a.strip()]


# Which form field a service refusal belongs under (None: the form as a whole).
FIELD_OF_CODE = {
    "invalid_cron": "cron",
    "invalid_expire_seconds": "expire_seconds",
    "invalid_recipient": "recipients",
    "webhook_not_configured": "webhook",
}


class ReportSubscriptionForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=[(k, k) for k in services.SUBSCRIBABLE])
    filters = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text='As the report page takes them, e.g. {"by": "root_cause"} for aging, '
        '{"from": "2026-11-01", "to": "2026-11-30"} for trends, {"at": "…"} for the inventory.',
    )
    format = forms.ChoiceField(choices=[(f, f) for f in services.SUBSCRIPTION_FORMATS])
    cron = forms.CharField(
        max_length=200,
        help_text="minute hour day-of-month month day-of-week, in the tenant's time zone "
        "(e.g. 0 7 * * 1-5: weekdays at 07:00).",
    )
    expire_seconds = forms.IntegerField(
        initial=3600, help_text="A tick not started within this many seconds is dropped, not run late."
    )
    recipients = RecipientsField(required=False, help_text="One email address a line.")

    class Meta:
        model = ReportSubscription
        fields = ["tenant", "name", "kind", "filters", "format", "recipients", "webhook", "is_active"]
        help_texts = {
            "webhook": "Also POST each report to the tenant's signed webhook (SLA webhooks; it must be "
            "set up and active)."
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial.setdefault("cron", services.subscription_cron(self.instance))
            if self.instance.schedule is not None:
                self.initial.setdefault("expire_seconds", self.instance.schedule.expire_seconds)

    def clean(self):
        data = super().clean()
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is None or self.errors:
            return data
        try:
            data["filters"], data["recipients"], _ = services.subscription_validate(
                tenant=tenant,
                kind=data.get("kind", ""),
                filters=data.get("filters"),
                fmt=data.get("format", ""),
                recipients=data.get("recipients") or [],
                webhook=bool(data.get("webhook")),
                cron=data.get("cron", ""),
                expire_seconds=data.get("expire_seconds"),
                require_webhook=True,
            )
        except ApplicationError as exc:
            self.add_error(FIELD_OF_CODE.get(exc.code), exc.message)
        return data


@admin.register(ReportSubscription)
class ReportSubscriptionAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Added and changed by approvers and admins through reporting.services.subscription_save (its
    beat entry and audit event with it); deactivated by the active flag or the action."""

    permission_area = "report_subscription"
    form = ReportSubscriptionForm
    action_verbs = {"deactivate_selected": "change"}
    actions = ["deactivate_selected"]
    list_display = ["name", "tenant", "kind", "format", "cron", "webhook", "is_active"]
    list_filter = ["is_active", "kind"]
    list_select_related = ["tenant", "schedule__crontab"]
    fields = [
        "tenant",
        "name",
        "kind",
        "filters",
        "format",
        "cron",
        "expire_seconds",
        "recipients",
        "webhook",
        "is_active",
        "schedule",
        "created_by",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["schedule", "created_by", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return [*readonly, "name"] if obj is not None else readonly

    # Shown where the form is read-only (a role that may only view): the beat entry's values.
    @admin.display(description="cron (tenant's zone)")
    def cron(self, obj):
        return services.subscription_cron(obj) or "-"

    @admin.display(description="expire seconds")
    def expire_seconds(self, obj):
        return obj.schedule.expire_seconds if obj.schedule is not None else "-"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = services.subscription_save(
            tenant=obj.tenant,
            actor=Actor.for_user(request.user),
            name=obj.name,
            kind=data["kind"],
            filters=data["filters"],
            fmt=data["format"],
            recipients=data["recipients"],
            webhook=data["webhook"],
            cron=data["cron"],
            expire_seconds=data["expire_seconds"],
            is_active=data["is_active"],
            new=not change,
            require_webhook=True,
        )
        obj.pk = saved.pk

    @admin.action(description="Deactivate the selected subscriptions (their beat entries disabled)")
    def deactivate_selected(self, request, queryset):
        done = 0
        for sub in queryset.filter(is_active=True):
            if not self.may(request, "change", sub):
                raise PermissionDenied
            services.subscription_deactivate(
                tenant=sub.tenant, actor=Actor.for_user(request.user), subscription=sub
            )
            done += 1
        self.message_user(request, f"{done} subscription(s) deactivated.", messages.SUCCESS)


@admin.register(ReportDelivery)
class ReportDeliveryAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """The delivery log: every attempt's outcome, the desk case of a failed one."""

    permission_area = "report_delivery"
    list_display = [
        "subscription",
        "channel",
        "scheduled_for",
        "status",
        "attempts",
        "case_id",
        "delivered_at",
    ]
    list_filter = ["status", "channel"]
    readonly_fields = [
        "subscription",
        "artifact",
        "channel",
        "scheduled_for",
        "status",
        "attempts",
        "last_error",
        "trace_id",
        "webhook_delivery_id",
        "case_id",
        "created_at",
        "delivered_at",
    ]
