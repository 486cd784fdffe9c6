"""Admin: sources (with upload), batches with status and totals, rejections inline."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from jfintech.audit import Actor
from jfintech.common.admin_actions import intermediate_form_action
from jfintech.common.errors import ApplicationError
from jfintech.observability.admin import TraceLinksAdminMixin
from jfintech.tenancy.admin import TenantScopedAdminMixin
from reconciliation.ingestion import services
from reconciliation.ingestion.formats import FORMATS
from reconciliation.models import DataSource, IngestionBatch, Rejection

INLINE_REJECTIONS = 200


class IndentedJSONField(forms.JSONField):
    """A mapping shown one key a line: a composite key or sign rules on one JSON line are unreadable."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value  # what the user typed, shown back with the error
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


class DataSourceForm(forms.ModelForm):
    class Meta:
        model = DataSource
        fields = [
            "tenant", "name", "kind", "format", "mapping", "connector", "is_active", "accept_empty",
            "re_reports",
        ]  # fmt: skip
        field_classes = {"mapping": IndentedJSONField, "connector": IndentedJSONField}
        widgets = {"mapping": forms.Textarea(attrs={"rows": 16, "cols": 80})}
        help_texts = {
            "re_reports": "The statement source whose entries this one re-reports (a camt.053 statement "
            "source re-reporting its camt.054 notifications): an entry both carry is loaded once; the "
            "later copy is stored linked to the earlier (docs/ingestion.md)."
        }

    def clean(self):
        data = super().clean()
        tenant, target = data.get("tenant") or getattr(self.instance, "tenant", None), data.get("re_reports")
        try:
            services.source_validate(
                kind=data.get("kind", ""),
                format=data.get("format", ""),
                mapping=data.get("mapping") or {},
                connector=data.get("connector") or {},
            )
            if target is not None and tenant is not None and target.tenant_id != tenant.pk:
                raise ApplicationError(
                    "re_reports: that source belongs to another tenant", code="invalid_source"
                )
            services.source_validate_re_reports(
                tenant=tenant,
                name=data.get("name") or self.instance.name,
                kind=data.get("kind", ""),
                re_reports=target.name if target else None,
            )
        except ApplicationError as exc:
            raise ValidationError(exc.message) from exc
        return data


class UploadForm(forms.Form):
    file = forms.FileField()
    format = forms.ChoiceField(choices=[(f, f) for f in ("auto", *FORMATS)], initial="auto")


@admin.register(DataSource)
class DataSourceAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "source"
    form = DataSourceForm
    list_display = [
        "name",
        "tenant",
        "kind",
        "format",
        "connector_type",
        "re_reports",
        "is_active",
        "upload_link",
    ]
    list_filter = ["kind", "format", "is_active"]
    search_fields = ["name"]

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return [*readonly, "name"] if obj is not None else readonly

    @admin.display(description="connector")
    def connector_type(self, obj):
        return (obj.connector or {}).get("type", "database")

    @admin.display(description="")
    def upload_link(self, obj):
        return format_html('<a href="{}">Upload a file</a>', reverse("admin:ingestion_upload", args=[obj.pk]))

    def save_model(self, request, obj, form, change):
        saved, _ = services.source_upsert(
            tenant=obj.tenant,
            actor=Actor.for_user(request.user),
            name=obj.name,
            kind=obj.kind,
            format=obj.format,
            mapping=obj.mapping,
            connector=obj.connector,
            is_active=obj.is_active,
            accept_empty=obj.accept_empty,
            re_reports=obj.re_reports.name if obj.re_reports_id else None,
        )
        obj.pk = saved.pk

    def get_urls(self):
        upload = self.admin_site.admin_view(self.upload_view)
        return [path("<int:source_id>/upload/", upload, name="ingestion_upload"), *super().get_urls()]

    def upload_view(self, request, source_id: int):
        source = get_object_or_404(self.get_queryset(request), pk=source_id)
        self.require(request, "upload", source)
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            batch = services.batch_ingest_file(
                tenant=source.tenant,
                actor=Actor.for_user(request.user),
                source=source,
                fileobj=upload,
                file_name=upload.name,
                format=form.cleaned_data["format"],
            )
            level = messages.SUCCESS if batch.status in ("loaded", "duplicate") else messages.ERROR
            linked = f" ({batch.rows_linked} linked: loaded earlier by the partner source)"
            self.message_user(
                request,
                f"Batch {batch.pk}: {batch.status}, {batch.rows_accepted} accepted"
                f"{linked if batch.rows_linked else ''}, {batch.rows_rejected} rejected. "
                f"{batch.reject_reason}",
                level,
            )
            return redirect("admin:reconciliation_ingestionbatch_change", batch.pk)
        context = {**self.admin_site.each_context(request), "form": form, "source": source, "title": "Upload"}
        return TemplateResponse(request, "admin/ingestion/upload.html", context)


class RejectionInline(admin.TabularInline):
    model = Rejection
    fields = ["line_no", "reason", "message", "raw"]
    readonly_fields = fields
    can_delete = False
    extra = 0
    max_num = 0
    verbose_name_plural = f"rejections (the first {INLINE_REJECTIONS}; the API filters them all)"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs.filter(pk__in=qs.order_by("line_no", "id").values("pk")[:INLINE_REJECTIONS])

    def has_add_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True  # shown on a batch's page, which the batch's own permission already allows


class ReverseForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Why are these batches reversed? (kept in the audit trail)",
    )


@admin.register(IngestionBatch)
class IngestionBatchAdmin(TenantScopedAdminMixin, TraceLinksAdminMixin, admin.ModelAdmin):
    permission_area = "batch"
    action_verbs = {"reverse_batches": "reverse"}
    list_display = [
        "id",
        "source",
        "file_name",
        "status",
        "rows_total",
        "rows_accepted",
        "rows_rejected",
        "rows_linked",
        "reject_code",
        "received_at",
    ]
    list_filter = ["status", "detected_format", "source__kind"]
    search_fields = ["file_name", "sha256"]
    list_select_related = ["source"]
    inlines = [RejectionInline]
    actions = ["reverse_batches"]
    readonly_fields = [*(f.name for f in IngestionBatch._meta.concrete_fields), "trace_links"]

    @admin.action(description="Reverse the selected loaded batches (rows kept, marked reversed)…")
    @intermediate_form_action("Reverse batches", lambda request, data: ReverseForm(data))
    def reverse_batches(self, request, queryset, data):
        for batch in queryset.select_related("tenant"):
            try:
                services.batch_reverse(
                    tenant=batch.tenant,
                    actor=Actor.for_user(request.user),
                    batch=batch,
                    reason=data["reason"],
                )
                self.message_user(request, f"Batch {batch.pk} reversed.")
            except ApplicationError as exc:
                self.message_user(request, f"Batch {batch.pk}: {exc.message}", messages.ERROR)
