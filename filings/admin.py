"""The compliance desk: filing configuration, the data filings are prepared from, the filings with
their lineage and workflow actions (each calls a service), packages and acknowledgements, and the
rule catalog. What a staff user may do is the permission table's answer (TenantScopedAdminMixin)."""

from django.contrib import admin, messages
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from filings import selectors, services
from filings.config import config_save_instance
from filings.models import (
    Acknowledgement,
    Branch,
    CashTransaction,
    CtrExclusion,
    ExemptPerson,
    Filing,
    FilingInstitution,
    FilingLineage,
    FilingSubject,
    FxRate,
    Package,
    PartyVersion,
)
from filings.validation import catalog
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.admin import TenantScopedAdminMixin


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ConfigAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "filing_config"

    def has_delete_permission(self, request, obj=None):
        return False  # configuration is changed (audited), never deleted

    def save_model(self, request, obj, form, change):
        config_save_instance(tenant=obj.tenant, actor=Actor.for_user(request.user), obj=obj)


@admin.register(FilingInstitution)
class FilingInstitutionAdmin(ConfigAdmin):
    list_display = ["name", "tenant", "ein", "transmitter_tcc", "break_threshold"]


@admin.register(Branch)
class BranchAdmin(ConfigAdmin):
    list_display = ["code", "name", "tenant", "city", "state"]


@admin.register(ExemptPerson)
class ExemptPersonAdmin(ConfigAdmin):
    list_display = ["party_key", "reason", "valid_from", "valid_to", "tenant"]


@admin.register(FxRate)
class FxRateAdmin(ConfigAdmin):
    list_display = ["currency", "business_date", "usd_per_unit", "source", "tenant"]
    list_filter = ["currency"]


class DataAdmin(ReadOnlyMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "filing_data"


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    max_num = 0
    extra = 0

    def has_view_permission(self, request, obj=None):
        return True  # the parent's page asked the permission table already


@admin.register(PartyVersion)
class PartyVersionAdmin(DataAdmin):
    list_display = ["party_key", "version", "is_current", "last_name", "first_name", "tin", "valid_from"]
    list_filter = ["is_current", "is_entity"]
    search_fields = ["party_key", "last_name"]


@admin.register(CashTransaction)
class CashTransactionAdmin(DataAdmin):
    list_display = [
        "external_id",
        "version",
        "is_current",
        "business_date",
        "branch_code",
        "direction",
        "amount",
        "currency",
        "conducted_by",
        "on_behalf_of",
    ]
    list_filter = ["direction", "is_current", "currency"]
    search_fields = ["external_id", "conducted_by", "on_behalf_of", "account"]


@admin.register(CtrExclusion)
class CtrExclusionAdmin(DataAdmin):
    list_display = ["party_key", "business_date", "total_cash_in", "total_cash_out", "reason", "recorded_at"]


class SubjectInline(ReadOnlyInline):
    model = FilingSubject
    fields = ["party_key", "party_version", "role", "cash_in", "cash_out", "transactions"]


class LineageInline(ReadOnlyInline):
    model = FilingLineage
    fields = ["transaction", "direction", "amount", "currency", "usd_per_unit", "amount_usd", "rate_source"]


class DeadlineFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("soon", f"Due within {services.REMIND_DAYS} days")]

    def queryset(self, request, queryset):
        today = timezone.now().date()
        if self.value() == "overdue":
            return queryset.filter(pk__in=selectors.filings_overdue(today=today))
        if self.value() == "soon":
            return queryset.filter(pk__in=selectors.filings_due_soon(today=today, days=services.REMIND_DAYS))
        return queryset


def _run(modeladmin, request, queryset, call, done: str):
    for filing in queryset.order_by("pk"):
        try:
            call(filing)
            modeladmin.message_user(request, f"Filing {filing.pk}: {done}.")
        except ApplicationError as exc:
            detail = exc.extra.get("breaks") if exc.extra else None
            modeladmin.message_user(
                request,
                f"Filing {filing.pk}: {exc.message}" + (f" {detail}" if detail else ""),
                messages.ERROR,
            )


@admin.register(Filing)
class FilingAdmin(ReadOnlyMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "filing"
    list_display = [
        "id",
        "kind",
        "subject_key",
        "period_start",
        "status",
        "due_date",
        "version",
        "bsa_id",
        "total_cash_in",
        "total_cash_out",
        "preparer",
        "approver",
    ]
    list_filter = ["kind", "status", DeadlineFilter]
    search_fields = ["subject_key", "bsa_id", "prior_bsa_id"]
    readonly_fields = ["approval_link", "errors", "gate_override", "version_chain"]
    inlines = [SubjectInline, LineageInline]
    actions = ["validate", "request_approval", "approve", "package", "amend"]
    action_verbs = {
        "validate": "prepare",
        "request_approval": "prepare",
        "approve": "approve",
        "package": "package",
        "amend": "prepare",
    }
    change_list_template = "admin/filings/filing/change_list.html"

    @admin.display(description="versions")
    def version_chain(self, obj):
        return " → ".join(
            f"v{f.version} #{f.pk} {f.status} {f.bsa_id}" for f in selectors.filing_chain(filing=obj)
        )

    @admin.action(description="Validate (XSD and the rule catalog)")
    def validate(self, request, queryset):
        actor = Actor.for_user(request.user)
        _run(
            self,
            request,
            queryset,
            lambda f: services.filing_validate(tenant=f.tenant, actor=actor, filing_id=f.pk),
            "validated",
        )

    @admin.action(description="Request approval")
    def request_approval(self, request, queryset):
        actor = Actor.for_user(request.user)
        _run(
            self,
            request,
            queryset,
            lambda f: services.filing_request_approval(tenant=f.tenant, actor=actor, filing_id=f.pk),
            "sent for approval",
        )

    @admin.action(description="Approve (four eyes; open breaks need an override through the API)")
    def approve(self, request, queryset):
        actor = Actor.for_user(request.user)
        _run(
            self,
            request,
            queryset,
            lambda f: services.filing_approve(tenant=f.tenant, actor=actor, filing_id=f.pk),
            "approved",
        )

    @admin.action(description="Package the selected approved filings (one batch per tenant)")
    def package(self, request, queryset):
        actor = Actor.for_user(request.user)
        for tenant_id in sorted(set(queryset.values_list("tenant_id", flat=True))):
            filings = list(queryset.filter(tenant_id=tenant_id).order_by("pk"))
            try:
                pkg = services.package_create(
                    tenant=filings[0].tenant, actor=actor, filing_ids=[f.pk for f in filings]
                )
                self.message_user(
                    request, f"Package {pkg.pk} ({pkg.sha256[:12]}) with {len(filings)} filing(s)."
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)

    @admin.action(description="Amend (new version carrying the BSA ID)")
    def amend(self, request, queryset):
        actor = Actor.for_user(request.user)
        _run(
            self,
            request,
            queryset,
            lambda f: services.filing_amend(tenant=f.tenant, actor=actor, filing_id=f.pk),
            "amendment drafted",
        )

    def get_urls(self):
        return [
            path("rules/", self.admin_site.admin_view(self.rules_view), name="filings_filing_rules"),
            path(
                "<int:filing_id>/approve/",
                self.admin_site.admin_view(self.approve_view),
                name="filings_filing_approve",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="approval")
    def approval_link(self, obj):
        if obj.status != Filing.Status.PENDING_APPROVAL:
            return "-"
        url = reverse("admin:filings_filing_approve", args=[obj.pk])
        return format_html('<a id="approve-link" href="{}">Approve (readiness gate, override)</a>', url)

    def approve_view(self, request, filing_id: int):
        """Approve one filing; open breaks that block it are listed, each to tick by name, with a
        reason (the readiness-gate override, audited by the service)."""
        filing = self.get_object(request, str(filing_id))
        if filing is None:
            raise Http404
        self.require(request, "approve", filing)
        inst = selectors.institution_of(tenant=filing.tenant)
        threshold = inst.break_threshold if inst else 0
        blocking = selectors.gate_breaks(tenant=filing.tenant, filing=filing, threshold=threshold)
        if request.method == "POST":
            try:
                services.filing_approve(
                    tenant=filing.tenant,
                    actor=Actor.for_user(request.user),
                    filing_id=filing.pk,
                    override_case_ids=[int(i) for i in request.POST.getlist("override") if i.isdigit()],
                    override_reason=request.POST.get("reason", ""),
                )
                self.message_user(request, f"Filing {filing.pk}: approved.")
                return redirect(reverse("admin:filings_filing_change", args=[filing.pk]))
            except ApplicationError as exc:
                self.message_user(request, f"Filing {filing.pk}: {exc.message}", messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Approve {filing}",
            "filing": filing,
            "breaks": blocking,
            "threshold": threshold,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/filings/approve.html", context)

    def rules_view(self, request):
        self.require(request, "view")
        rules = catalog()
        context = {
            **self.admin_site.each_context(request),
            "title": f"FinCEN rule catalog v{rules.version}",
            "rules": list(rules.rules.values()),
            "sha256": rules.sha256,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/filings/rules.html", context)


@admin.register(Package)
class PackageAdmin(ReadOnlyMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "filing_package"
    list_display = ["id", "kind", "sha256", "size_bytes", "created_at", "created_by", "submitted_at"]
    exclude = ["xml"]
    actions = ["submit"]
    action_verbs = {"submit": "filing.transmit"}

    readonly_fields = ["manifest", "acknowledge_link"]

    @admin.display(description="acknowledgement")
    def acknowledge_link(self, obj):
        url = reverse("admin:filings_package_acknowledge", args=[obj.pk])
        return format_html('<a id="acknowledge-link" href="{}">Record FinCEN\'s acknowledgement</a>', url)

    def get_urls(self):
        view = self.admin_site.admin_view(self.acknowledge_view)
        return [
            path("<int:package_id>/acknowledge/", view, name="filings_package_acknowledge"),
            *super().get_urls(),
        ]

    def acknowledge_view(self, request, package_id: int):
        package = self.get_object(request, str(package_id))
        if package is None:
            raise Http404
        self.require(request, "filing.transmit", package)
        if request.method == "POST" and request.FILES.get("file"):
            try:
                ack = services.acknowledgement_receive(
                    tenant=package.tenant,
                    actor=Actor.for_user(request.user),
                    package_id=package.pk,
                    xml=request.FILES["file"].read(),
                )
                self.message_user(request, f"Acknowledgement recorded: {ack.summary}")
                return redirect(reverse("admin:filings_package_change", args=[package.pk]))
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Acknowledgement of {package}",
            "package": package,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/filings/acknowledge.html", context)

    @admin.action(description="Record as submitted to FinCEN")
    def submit(self, request, queryset):
        actor = Actor.for_user(request.user)
        for pkg in queryset:
            try:
                services.package_submit(tenant=pkg.tenant, actor=actor, package_id=pkg.pk)
                self.message_user(request, f"Package {pkg.pk} submitted.")
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)


@admin.register(Acknowledgement)
class AcknowledgementAdmin(ReadOnlyMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "filing_package"
    list_display = ["id", "package", "received_at", "received_by", "summary"]
    exclude = ["xml"]

    def has_view_permission(self, request, obj=None):
        return self.may(request, "view", obj)
