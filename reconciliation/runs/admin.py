"""Admin: definitions (sources, rules, beat schedule, "start a run"), rule versions, runs with
progress and trace id, breaks. Every write goes through services (audited)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.utils.html import format_html

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.admin import TenantScopedAdminMixin
from reconciliation.matching.passes import DEFAULT_RULES, parse_rules
from reconciliation.models import DataSource
from reconciliation.runs import services
from reconciliation.runs.models import Break, Definition, RuleVersion, Run, RunTrigger, Side


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
        return format_html('<a href="../run/{}/change/">{} {}</a>', run.pk, run.pk, run.status)

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
        "comment",
        "created_by",
        "created_at",
    ]
    exclude = ["rules"]
    permission_area = "rule_version"  # view only

    @admin.display(description="rules")
    def rules_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.rules, indent=2))


@admin.register(Run)
class RunAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "definition",
        "as_of",
        "status",
        "progress",
        "records_in_scope",
        "matched",
        "in_breaks",
        "excluded",
        "trigger",
        "attempts",
        "trace_id",
        "created_at",
    ]
    list_filter = ["status", "kind", "trigger"]
    search_fields = ["trace_id", "definition__name"]
    list_select_related = ["definition"]
    readonly_fields = [f.name for f in Run._meta.concrete_fields] + ["progress"]
    actions = ["fail_runs"]
    permission_area = "run"  # no "change" verb: a run is read-only (no SAVE button)
    action_verbs = {"fail_runs": "fail"}

    @admin.display(description="progress")
    def progress(self, obj):
        if not obj.progress_total:
            return "-" if obj.status in ("pending", "fetching") else "0 / 0"
        percent = 100 * obj.progress_done / obj.progress_total
        return f"{obj.progress_done} / {obj.progress_total} ({percent:.0f}%)"

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


@admin.register(Break)
class BreakAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """What a run found (the analysts work on the cases, in the exceptions desk)."""

    list_display = [
        "id",
        "run",
        "break_type",
        "reference",
        "account",
        "instrument",
        "currency",
        "amount_at_stake",
    ]
    list_filter = ["break_type"]
    search_fields = ["reference", "fingerprint", "account", "instrument"]
    readonly_fields = [f.name for f in Break._meta.concrete_fields]
    permission_area = "break"  # view only
