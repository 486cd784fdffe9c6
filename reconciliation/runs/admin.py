"""Admin: definitions (sources, rules, beat schedule, "start a run"), rule versions, runs with
progress and trace id, breaks. Every write goes through services (audited)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from exceptions.selectors import case_id_of_break
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.common.money import format_money, money_html, quantity_html
from jfintech.observability.admin import trace_links
from jfintech.tenancy.admin import TenantScopedAdminMixin
from reconciliation.matching.passes import DEFAULT_RULES, effective_passes, parse_rules
from reconciliation.models import DataSource, Record
from reconciliation.runs import selectors, services
from reconciliation.runs.models import Break, Definition, RuleVersion, Run, RunTrigger, Side

BREAKS_SHOWN = 50  # on the run page; the rest through the breaks list filtered by the run


class _Refused(Exception):
    """A row an admin action cannot act on; its message is shown to the user."""


class DefinitionForm(forms.ModelForm):
    """The definition's own fields plus what lives elsewhere: sources per side, the current rules
    (saving different rules publishes a new version) and the beat schedule."""

    position_sources = forms.ModelMultipleChoiceField(
        DataSource.objects.all(), required=False, help_text="three-way only"
    )
    left_sources = forms.ModelMultipleChoiceField(DataSource.objects.all(), help_text="three-way: trades")
    right_sources = forms.ModelMultipleChoiceField(
        DataSource.objects.all(), help_text="three-way: settlements"
    )
    rules = forms.JSONField(
        required=False, help_text="empty: the kind's default rules (docs/reconciliation.md)"
    )
    rules_comment = forms.CharField(required=False, max_length=200, help_text="why the rules changed")
    schedule_cron = forms.CharField(
        required=False, help_text="crontab in the tenant's time zone, e.g. '0 6 * * 1-5'"
    )
    schedule_expire_seconds = forms.IntegerField(required=False, min_value=1, initial=3600)
    schedule_enabled = forms.BooleanField(required=False, initial=True)

    class Meta:
        model = Definition
        fields = [
            "tenant",
            "name",
            "kind",
            "description",
            "lookback_days",
            "lookahead_days",
            "deadline_seconds",
            "is_active",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        definition = self.instance if self.instance.pk else None
        if definition is None:
            return
        for side in Side.values:
            self.fields[f"{side}_sources"].initial = [
                link.source_id for link in definition.sources.all() if link.side == side
            ]
        latest = definition.rule_versions.order_by("-version").first()  # pending ones included
        self.fields["rules"].initial = latest.rules if latest else None
        snapshot = services.schedule_snapshot(definition)
        if snapshot:
            self.fields["schedule_cron"].initial = snapshot["cron"]
            self.fields["schedule_expire_seconds"].initial = snapshot["expire_seconds"]
            self.fields["schedule_enabled"].initial = snapshot["enabled"]

    def clean_rules(self):
        rules = self.cleaned_data.get("rules")
        if rules in (None, ""):
            return None
        try:
            parse_rules(rules)
        except ApplicationError as exc:
            raise ValidationError(exc.message) from exc
        return rules

    def sources(self) -> dict:
        kind = self.cleaned_data.get("kind") or self.instance.kind
        sides = ("position", "left", "right") if kind == "three_way" else ("left", "right")
        return {side: list(self.cleaned_data.get(f"{side}_sources") or []) for side in sides}


@admin.register(Definition)
class DefinitionAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    permission_area = "definition"
    action_verbs = {"start_runs": "run.start"}
    form = DefinitionForm
    list_display = ["name", "tenant", "kind", "is_active", "rule_version", "schedule_display", "last_run"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name"]
    actions = ["start_runs"]

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return [*readonly, "name", "kind"] if obj is not None else readonly

    @admin.display(description="rules")
    def rule_version(self, obj):
        current = obj.rule_versions.order_by("-version").first()
        return f"v{current.version}" if current else "-"

    @admin.display(description="schedule")
    def schedule_display(self, obj):
        snapshot = services.schedule_snapshot(obj)
        if not snapshot:
            return "-"
        return f"{snapshot['cron']} ({snapshot['timezone']}){'' if snapshot['enabled'] else ' disabled'}"

    @admin.display(description="last run")
    def last_run(self, obj):
        run = obj.runs.order_by("-id").first()
        if run is None:
            return "-"
        return format_html(
            '<a href="{}">{} ({})</a>',
            reverse("admin:reconciliation_run_change", args=[run.pk]),
            run,
            run.status,
        )

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        data = form.cleaned_data
        try:
            if change:
                definition = services.definition_update(
                    definition=obj,
                    actor=actor,
                    sources=form.sources(),
                    **{f: data[f] for f in services.DEFINITION_FIELDS},
                )
                if data.get("rules") is not None:
                    services.rules_publish(
                        definition=definition,
                        actor=actor,
                        rules=data["rules"],
                        comment=data.get("rules_comment") or "edited in the admin",
                    )
            else:
                definition = services.definition_create(
                    tenant=data["tenant"],
                    actor=actor,
                    name=data["name"],
                    kind=data["kind"],
                    sources=form.sources(),
                    rules=data.get("rules") or DEFAULT_RULES[data["kind"]],
                    **{f: data[f] for f in services.DEFINITION_FIELDS if f != "is_active"},
                )
            cron = (data.get("schedule_cron") or "").strip() or None
            services.definition_schedule_set(
                definition=definition,
                actor=actor,
                cron=cron,
                expire_seconds=data.get("schedule_expire_seconds") or 3600,
                enabled=bool(data.get("schedule_enabled")),
            )
        except ApplicationError as exc:
            raise _Refused(exc.message) from exc
        obj.pk = definition.pk

    def changeform_view(self, request, *args, **kwargs):
        # The admin's view is atomic: a refusal from a service rolls back everything it wrote and
        # is shown on the form's page instead of a 500.
        try:
            return super().changeform_view(request, *args, **kwargs)
        except _Refused as exc:
            self.message_user(request, f"Not saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    @admin.action(description="Start a run now (as of today in the tenant's time zone)")
    def start_runs(self, request, queryset):
        for definition in queryset.select_related("tenant"):
            try:
                run = services.run_start(
                    tenant=definition.tenant,
                    actor=Actor.for_user(request.user),
                    definition=definition,
                    trigger=RunTrigger.ADMIN,
                )
                self.message_user(request, f"{definition.name}: run {run.pk} started.")
            except ApplicationError as exc:
                self.message_user(request, f"{definition.name}: {exc.message}", messages.ERROR)


def passes_html(rules) -> str:
    """The passes as the engine reads them, with the defaults the JSON leaves out (e.g. an aggregate
    date's group: member), so a reviewer sees what a version will do, not only what it says."""
    passes = effective_passes(rules)
    return "-" if passes is None else format_html("<pre>{}</pre>", json.dumps(passes, indent=2, default=str))


@admin.register(RuleVersion)
class RuleVersionAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Read-only: a version never changes (edit a definition's rules to publish a new one; another
    person approves it through the matching API before runs use it)."""

    list_display = ["definition", "version", "comment", "created_by", "created_at"]
    list_filter = ["definition__kind"]
    readonly_fields = [
        "tenant",
        "definition",
        "version",
        "rules_pretty",
        "passes_effective",
        "comment",
        "created_by",
        "created_at",
    ]
    exclude = ["rules"]
    permission_area = "rule_version"  # view only

    @admin.display(description="rules")
    def rules_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.rules, indent=2))

    @admin.display(description="passes as run (defaults filled in)")
    def passes_effective(self, obj):
        return passes_html(obj.rules)


def _link(name: str, pk, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse(name, args=[pk]), text)


def _list(items) -> str:
    items = list(items)
    return (
        format_html(
            '<ul class="jf-links">{}</ul>', format_html_join("", "<li>{}</li>", ((i,) for i in items))
        )
        if items
        else "—"
    )


@admin.register(Run)
class RunAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "title",
        "as_of",
        "status",
        "progress",
        "records_in_scope",
        "matched",
        "in_breaks",
        "excluded",
        "trigger",
        "attempts",
        "created_at",
    ]
    list_display_links = ["id", "title"]
    list_filter = ["status", "kind", "trigger"]
    search_fields = ["trace_id", "definition__name"]
    list_select_related = ["definition"]
    # The page leads with what the run found, each a link; the row's own fields follow.
    found = ["progress", "breaks_found", "cases_links", "matches_by_pass", "batches_in_scope", "trace"]
    readonly_fields = [*found, *(f.name for f in Run._meta.concrete_fields)]
    fieldsets = [
        ("What this run found", {"fields": found}),
        ("The run", {"fields": [f.name for f in Run._meta.concrete_fields]}),
    ]
    actions = ["fail_runs"]
    permission_area = "run"  # no "change" verb: a run is read-only (no SAVE button)
    action_verbs = {"fail_runs": "fail"}

    class Media:
        js = ["reconciliation/run_progress.js"]

    @admin.display(description="run", ordering="definition__name")
    def title(self, obj):
        return str(obj)

    @admin.display(description="progress")
    def progress(self, obj):
        # The page's script polls progress.json while the run is in flight (docs/reconciliation.md).
        return format_html(
            '<span class="jf-progress" data-run="{}" data-terminal="{}">{}</span>',
            obj.pk,
            "1" if obj.is_terminal else "",
            progress_text(obj),
        )

    @admin.display(description="breaks")
    def breaks_found(self, obj):
        rows = (
            Break.objects.filter(run=obj).annotate(case_id=case_id_of_break()).order_by("id")[:BREAKS_SHOWN]
        )
        items = [
            format_html(
                "{} {} {} {} · {}",
                _link("admin:reconciliation_break_change", b.pk, f"break {b.pk}"),
                b.get_break_type_display(),
                b.reference or b.account or "",
                format_money(b.amount_at_stake, b.currency) if b.amount_at_stake is not None else "",
                _link("admin:exceptions_case_change", b.case_id, f"case {b.case_id}")
                if b.case_id
                else "no case",
            )
            for b in rows
        ]
        more = format_html(
            '<a href="{}?run__id__exact={}">all {} breaks of this run</a>',
            reverse("admin:reconciliation_break_changelist"),
            obj.pk,
            sum((obj.breaks_by_type or {}).values()),
        )
        return format_html("{}{}", _list(items), more)

    @admin.display(description="cases")
    def cases_links(self, obj):
        cases = reverse("admin:exceptions_case_changelist")
        counts = obj.cases or {}
        resolved_note = f"records matched in run {obj.pk}"  # exceptions.services.cases_resolve_matched
        return _list(
            [
                format_html('<a href="{}?first_run_id={}&amp;status=all">opened by this run</a>: {}', cases,
                            obj.pk, counts.get("opened", 0) - counts.get("reopened", 0)),
                format_html("reopened by this run: {} (each reached from its break above)",
                            counts.get("reopened", 0)),
                format_html('<a href="{}?resolution_note={}&amp;status=resolved">resolved by it</a>: {}',
                            cases, resolved_note, counts.get("resolved", 0)),
                format_html('<a href="{}?last_run_id={}&amp;status=all">last seen in this run</a>',
                            cases, obj.pk),
            ]
        )  # fmt: skip

    @admin.display(description="matches by pass")
    def matches_by_pass(self, obj):
        matches = reverse("admin:reconciliation_matchreview_changelist")
        return _list(
            format_html(
                '<a href="{}?run_id={}&amp;pass_name={}">pass {} {}</a>: {} {}',
                matches, obj.pk, row["pass_name"], row["pass_no"], row["pass_name"], row["n"],
                "suggested" if row["run_outcome"] == "suggested" else "matched",
            )
            for row in selectors.run_matches_by_pass(run=obj)
        )  # fmt: skip

    @admin.display(description="batches in scope")
    def batches_in_scope(self, obj):
        return _list(
            format_html(
                "{}: {} records",
                _link(
                    "admin:reconciliation_ingestionbatch_change", row["batch_id"], f"batch {row['batch_id']}"
                ),
                row["records"],
            )
            for row in selectors.run_batches(run=obj)
        )

    @admin.display(description="trace")
    def trace(self, obj):
        return trace_links(obj.trace_id)

    def get_urls(self):
        return [
            path(
                "<int:object_id>/progress.json",
                self.admin_site.admin_view(self.progress_view),
                name="reconciliation_run_progress",
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request, object_id):
        """Records done / total and the phase, for the list's and the page's poll."""
        run = get_object_or_404(self.get_queryset(request), pk=object_id)
        self.require(request, "view", run)
        return JsonResponse(
            {
                "id": run.pk,
                "status": run.status,
                "progress_done": run.progress_done,
                "progress_total": run.progress_total,
                "terminal": run.is_terminal,
                "text": progress_text(run),
            }
        )

    @admin.action(description="Fail the selected runs that are still in flight (loudly, with a case)")
    def fail_runs(self, request, queryset):
        for run in queryset:
            if services.run_fail(
                run_id=run.pk,
                error=f"failed from the admin by {request.user.get_username()}",
                code="manual",
                actor=Actor.for_user(request.user),
            ):
                self.message_user(request, f"Run {run.pk} failed.")


def progress_text(run) -> str:
    if not run.progress_total:
        return f"{run.status}: -" if run.status in ("pending", "fetching") else f"{run.status}: 0 / 0"
    percent = 100 * run.progress_done / run.progress_total
    return f"{run.status}: {run.progress_done:,} / {run.progress_total:,} ({percent:.0f}%)"


class BreakRunFilter(admin.SimpleListFilter):
    """Which run found it (the links from a run and from a case land here)."""

    title = "run"
    parameter_name = "run__id__exact"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, f"run {value}")] if value else []

    def queryset(self, request, queryset):
        return queryset.filter(run_id=int(self.value())) if (self.value() or "").isdigit() else queryset


@admin.register(Break)
class BreakAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """What a run found (the analysts work on the cases, in the exceptions desk)."""

    list_display = [
        "id",
        "run_link",
        "break_type",
        "reference",
        "account",
        "instrument",
        "amount",
        "case_link",
    ]
    list_filter = ["break_type", BreakRunFilter]
    list_select_related = ["run__definition"]
    search_fields = ["reference", "fingerprint", "account", "instrument"]
    readonly_fields = [
        "case_link",
        "run_link",
        "amount",
        "records",
        *(f.name for f in Break._meta.concrete_fields),
    ]
    permission_area = "break"  # view only

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(case_id=case_id_of_break())

    @admin.display(description="run", ordering="run_id")
    def run_link(self, obj):
        return _link("admin:reconciliation_run_change", obj.run_id, str(obj.run))

    @admin.display(description="case")
    def case_link(self, obj):
        return (
            _link("admin:exceptions_case_change", obj.case_id, f"case {obj.case_id}") if obj.case_id else "—"
        )

    @admin.display(description="amount at stake", ordering="amount_at_stake")
    def amount(self, obj):
        return money_html(obj.amount_at_stake, obj.currency)

    @admin.display(description="records (batch, line)")
    def records(self, obj):
        rows = Record.objects.filter(
            tenant_id=obj.tenant_id, id__in=obj.record_ids, business_date__in=obj.record_dates
        ).order_by("id")
        header = mark_safe(
            "<tr><th>id</th><th>kind</th><th>batch</th><th>line</th><th>external id</th><th>reference</th>"
            "<th>date</th><th>amount</th><th>quantity</th></tr>"
        )
        body = format_html_join(
            "",
            "<tr>" + "<td>{}</td>" * 9 + "</tr>",
            (
                (r.pk, r.kind,
                 _link("admin:reconciliation_ingestionbatch_change", r.batch_id, f"batch {r.batch_id}"),
                 r.line_no if r.line_no is not None else "—", r.external_id, r.reference or "—",
                 r.business_date, money_html(r.amount, r.currency),
                 quantity_html(r.quantity) if r.quantity is not None else "—")
                for r in rows
            ),
        )  # fmt: skip
        return format_html('<table class="jf-break-records">{}{}</table>', header, body)
