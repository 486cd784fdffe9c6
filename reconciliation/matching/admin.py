"""Admin of matching depth: the analysts' review of matches and suggestions (accept, reject, unmatch,
match by hand), the approvers' queue of rule versions, dry runs and impact simulations.

Every change goes through the services (audited); the list pages only read. Actions that need a
reason or a note ask for it on an intermediate page.
"""

from __future__ import annotations

import functools
import json

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from jfintech.audit import Actor
from jfintech.common.admin_actions import intermediate_form_action
from jfintech.common.errors import ApplicationError
from jfintech.common.money import money_html, quantity_html
from jfintech.tenancy.admin import TenantScopedAdminMixin
from reconciliation.matching import approval, manual, selectors, simulation, suggestions
from reconciliation.matching.models import MatchReview, RuleVersionApproval, SimulationKind, SimulationReport
from reconciliation.matching.passes import parse_rules
from reconciliation.runs.admin import passes_html
from reconciliation.runs.models import (
    MANUAL_PASS_NAME,
    Definition,
    MatchStatus,
    RuleVersion,
    RuleVersionStatus,
    Run,
)


def _actor(request) -> Actor:
    return Actor.for_user(request.user)


class TextForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Reason / note")

    def __init__(self, *args, required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["text"].required = required


def _each(modeladmin, request, queryset, verb: str, call) -> None:
    """``call(obj)`` per selected row (each its own transaction in the service); report what was done
    and what was refused, with the service's words."""
    done, refused = 0, []
    for obj in queryset:
        try:
            call(obj)
            done += 1
        except ApplicationError as exc:
            refused.append(f"{obj.pk}: {exc.message}")
    if done:
        modeladmin.message_user(request, f"{verb}: {done}.", messages.SUCCESS)
    if refused:
        modeladmin.message_user(
            request, f"Refused {len(refused)}: " + "; ".join(refused[:10]), messages.WARNING
        )


def _text_action(title: str, *, required: bool):
    """An action that first asks for a reason (required) or a note; the function gets the text."""

    def decorate(fn):
        @intermediate_form_action(title, lambda request, data: TextForm(data, required=required))
        @functools.wraps(fn)
        def with_text(modeladmin, request, queryset, cleaned_data):
            return fn(modeladmin, request, queryset, cleaned_data["text"])

        return with_text

    return decorate


class _MemberAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Who sees and does what is the permission table's (``permission_area``); four-eyes stays
    the services' decision."""


# --- matches and suggestions ----------------------------------------------------------------------


class ManualMatchForm(forms.Form):
    definition = forms.ModelChoiceField(queryset=Definition.objects.none())
    record_ids = forms.CharField(help_text="Record ids, separated by commas or spaces (both sides).")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, tenants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["definition"].queryset = Definition.objects.filter(tenant__in=tenants)

    def clean_record_ids(self) -> list[int]:
        parts = self.cleaned_data["record_ids"].replace(",", " ").split()
        if not all(p.isdigit() for p in parts):
            raise forms.ValidationError("Whole numbers only.")
        return [int(p) for p in parts]


class PassFilter(admin.SimpleListFilter):
    """Every pass the rules define (each rule version of the user's definitions), not only the passes
    that happen to have matches; plus matches made by hand."""

    title = "pass"
    parameter_name = "pass_name"

    def lookups(self, request, model_admin):
        names: dict[str, None] = {}
        versions = RuleVersion.objects.filter(tenant__in=model_admin.tenants_where(request, "view"))
        for rules in versions.order_by("definition_id", "version").values_list("rules", flat=True):
            try:
                for p in parse_rules(rules).passes:
                    names.setdefault(p.name)
            except ApplicationError:  # a rejected draft that never ran: its passes matched nothing
                continue
        names.setdefault(MANUAL_PASS_NAME)
        return [(n, n) for n in names]

    def queryset(self, request, queryset):
        return queryset.filter(pass_name=self.value()) if self.value() else queryset


@admin.register(MatchReview)
class MatchReviewAdmin(_MemberAdmin):
    permission_area = "match"
    action_verbs = {"accept": "decide", "reject": "decide", "unmatch": "decide"}
    list_display = [
        "id",
        "definition_id",
        "run_link",
        "pass_name",
        "status",
        "score",
        "created_at",
        "decided_by",
    ]
    list_filter = ["status", PassFilter]
    search_fields = ["=id", "=run_id", "=definition_id"]
    actions = ["accept", "reject", "unmatch"]
    readonly_fields = [
        "definition_id", "run_link", "pass_no", "pass_name", "status", "run_outcome", "score", "differences",
        "case_link", "created_at", "created_by", "decided_by", "decided_at", "decision_note", "records",
    ]  # fmt: skip
    fields = readonly_fields
    change_list_template = "admin/reconciliation/matching/match_changelist.html"
    # No "add": matching by hand has its own page (a reason, records of both sides).

    @admin.display(description="records")
    def records(self, obj):
        rows = selectors.match_records(match=obj)
        header = mark_safe(
            "<tr><th>side</th><th>id</th><th>batch</th><th>line</th><th>external id</th><th>date</th>"
            "<th>value date</th><th>reference</th><th>account</th><th>amount</th><th>quantity</th>"
            "<th>holds it</th></tr>"
        )
        body = format_html_join(
            "",
            "<tr>" + "<td>{}</td>" * 12 + "</tr>",
            (
                (r["side"], r["id"],
                 format_html('<a href="{}">batch {}</a>',
                             reverse("admin:reconciliation_ingestionbatch_change", args=[r["batch_id"]]),
                             r["batch_id"]),
                 "—" if r["line_no"] is None else r["line_no"], r["external_id"], r["business_date"],
                 r["value_date"] or "—", r["reference"] or "—", r["account"] or "—",
                 money_html(r["amount"], r["currency"]),
                 quantity_html(r["quantity"]) if r["quantity"] is not None else "—",
                 "yes" if r["is_active"] else "no")
                for r in rows
            ),
        )  # fmt: skip
        return format_html('<table class="jf-match-records">{}{}</table>', header, body)

    @admin.display(description="run", ordering="run_id")
    def run_link(self, obj):
        if obj.run_id is None:
            return "manual"
        return format_html(
            '<a href="{}">run {}</a>',
            reverse("admin:reconciliation_run_change", args=[obj.run_id]),
            obj.run_id,
        )

    @admin.display(description="case")
    def case_link(self, obj):
        if obj.case_id is None:
            return "—"
        return format_html(
            '<a href="{}">case {}</a>',
            reverse("admin:exceptions_case_change", args=[obj.case_id]),
            obj.case_id,
        )

    @_text_action("Accept the selected suggestions", required=False)
    def accept(self, request, queryset, note):
        _each(self, request, queryset, "Accepted", lambda m: suggestions.suggestion_accept(
            tenant=m.tenant, actor=_actor(request), match_id=m.pk, note=note))  # fmt: skip

    @_text_action("Reject the selected suggestions", required=True)
    def reject(self, request, queryset, reason):
        _each(self, request, queryset, "Rejected", lambda m: suggestions.suggestion_reject(
            tenant=m.tenant, actor=_actor(request), match_id=m.pk, reason=reason))  # fmt: skip

    @_text_action("Unmatch the selected matches (their records become open items)", required=True)
    def unmatch(self, request, queryset, reason):
        _each(self, request, queryset, "Unmatched", lambda m: manual.match_unmatch(
            tenant=m.tenant, actor=_actor(request), match_id=m.pk, reason=reason))  # fmt: skip

    def get_urls(self):
        return [
            path(
                "manual-match/",
                self.admin_site.admin_view(self.manual_match_view),
                name="reconciliation_matchreview_manual",
            ),
            *super().get_urls(),
        ]

    def manual_match_view(self, request):
        self.require(request, "decide")
        tenants = self.tenants_where(request, "decide")
        form = ManualMatchForm(request.POST or None, tenants=tenants)
        if request.method == "POST" and form.is_valid():
            definition = form.cleaned_data["definition"]
            try:
                match = manual.match_create_manual(
                    tenant=definition.tenant,
                    actor=_actor(request),
                    definition_id=definition.pk,
                    record_ids=form.cleaned_data["record_ids"],
                    reason=form.cleaned_data["reason"],
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Match {match.pk} created.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:reconciliation_matchreview_change", args=[match.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Match records by hand",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/reconciliation/matching/manual_match.html", context)


# --- rule approval ---------------------------------------------------------------------------------


@admin.register(RuleVersionApproval)
class RuleVersionApprovalAdmin(_MemberAdmin):
    permission_area = "rule_version"
    action_verbs = {"approve": "approve", "reject": "approve"}
    list_display = ["id", "definition", "version", "status", "created_by", "created_at", "decided_by"]
    list_filter = ["status"]
    actions = ["approve", "reject"]
    readonly_fields = [
        "definition", "version", "status", "rules_pretty", "passes_effective", "comment", "created_by",
        "created_at", "decided_by", "decided_at", "decision_note",
    ]  # fmt: skip
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("definition")

    @admin.display(description="rules")
    def rules_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.rules, indent=2))

    @admin.display(description="passes as run (defaults filled in)")
    def passes_effective(self, obj):
        return passes_html(obj.rules)

    def _decide(self, request, queryset, note, approve: bool):
        # The service checks the role (approver) and four-eyes (never the author) for each version.
        def decide(version):
            return approval.rule_version_decide(
                tenant=version.tenant,
                actor=_actor(request),
                user=request.user,
                version_id=version.pk,
                approve=approve,
                note=note,
            )

        _each(self, request, queryset, "Approved" if approve else "Rejected", decide)

    @_text_action("Approve the selected rule versions", required=False)
    def approve(self, request, queryset, note):
        self._decide(request, queryset, note, approve=True)

    @_text_action("Reject the selected rule versions", required=True)
    def reject(self, request, queryset, note):
        self._decide(request, queryset, note, approve=False)


# --- dry runs and impact simulations ------------------------------------------------------------------


class SimulationForm(forms.ModelForm):
    class Meta:
        model = SimulationReport
        fields = ["kind", "definition", "rule_version", "base_run", "as_of"]
        help_texts = {
            "rule_version": "Empty: the current approved version (a dry run); a pending one may be tried.",
            "base_run": "Impact: the completed run whose frozen scope is replayed.",
            "as_of": "Dry run: the as-of date (empty: today in the tenant's time zone).",
        }

    def __init__(self, *args, tenants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["definition"].queryset = Definition.objects.filter(tenant__in=tenants)
        self.fields["rule_version"].required = False
        self.fields["rule_version"].queryset = RuleVersion.objects.filter(tenant__in=tenants).exclude(
            status=RuleVersionStatus.REJECTED
        )
        self.fields["base_run"].queryset = Run.objects.filter(tenant__in=tenants, status="completed")


@admin.register(SimulationReport)
class SimulationReportAdmin(_MemberAdmin):
    permission_area = "simulation"
    list_display = [
        "id",
        "kind",
        "definition",
        "rule_version",
        "base_run",
        "status",
        "created_at",
        "duration_s",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [
        "kind", "definition", "rule_version", "base_run", "as_of", "date_from", "date_to", "status",
        "requested_by", "created_at", "completed_at", "duration_s", "summary_pretty", "diff_pretty", "error",
    ]  # fmt: skip

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, **kwargs)
        tenants = self.tenants_where(request, "add")

        class Form(SimulationForm):
            def __init__(self, *args, **kw):
                super().__init__(*args, tenants=tenants, **kw)

        return Form

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else SimulationForm.Meta.fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @admin.display(description="summary")
    def summary_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.summary, indent=2))

    @admin.display(description="diff")
    def diff_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.diff, indent=2))

    def save_model(self, request, obj, form, change):
        # Nothing is saved here: the service creates the report (audited) and sends the task.
        data = form.cleaned_data
        try:
            report = simulation.simulation_request(
                tenant=data["definition"].tenant,
                actor=_actor(request),
                kind=data["kind"],
                definition_id=data["definition"].pk,
                rule_version_id=data["rule_version"].pk if data.get("rule_version") else None,
                base_run_id=data["base_run"].pk if data.get("base_run") else None,
                as_of=data.get("as_of") if data["kind"] == SimulationKind.DRY_RUN else None,
            )
        except ApplicationError as exc:
            request._simulation_refusal = exc.message
            return
        obj.pk = report.pk

    def response_add(self, request, obj, post_url_continue=None):
        refusal = getattr(request, "_simulation_refusal", None)
        if refusal:
            self.message_user(request, f"Refused: {refusal}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:reconciliation_simulationreport_changelist"))
        self.message_user(request, f"Simulation {obj.pk} requested; it is computed in the background.")
        return HttpResponseRedirect(reverse("admin:reconciliation_simulationreport_change", args=[obj.pk]))

    def log_addition(self, request, obj, message):
        return None  # the service's audit event is the record of it


__all__ = ["MatchReviewAdmin", "MatchStatus", "RuleVersionApprovalAdmin", "SimulationReportAdmin"]
