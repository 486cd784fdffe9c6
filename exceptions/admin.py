"""The analysts' desk in the Django admin. Every change goes through ``exceptions.services``.

The list triages without opening cases (type, status, amount, age, SLA, assignee, definition);
bulk actions call the services case by case and report what they skipped and why; the case page
shows the source records side by side with the differing fields highlighted, the rule, the run
and its trace, comments and the read-only history.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from exceptions import presentation, selectors, services
from exceptions.models import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalThreshold,
    Case,
    CaseStatus,
    Priority,
    RootCauseCategory,
    SlaWebhook,
    WebhookDelivery,
)
from exceptions.workflow import MANUAL_REASONS
from jfintech.audit import Actor
from jfintech.common.admin_actions import intermediate_form_action
from jfintech.common.errors import ApplicationError
from jfintech.common.money import money_html
from jfintech.tenancy import calendar
from jfintech.tenancy.admin import TenantScopedAdminMixin
from jfintech.tenancy.models import Membership
from jfintech.tenancy.selectors import tenants_for_user

# The admin index shows the desk at a glance above the app list. (An app template named
# admin/index.html would lose to django.contrib.admin's own, which is installed first.)
admin.site.index_template = "admin/exceptions/index.html"


def _tenants(request):
    # Memoised on the request: filters, actions and the sidebar all ask within one page view.
    if not hasattr(request, "_jf_desk_tenants"):
        request._jf_desk_tenants = list(tenants_for_user(request.user))
    return request._jf_desk_tenants


# --- list filters ------------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    """Status, defaulting to the work still to do (everything but resolved)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("unresolved", "unresolved"), *CaseStatus.choices, ("all", "all")]

    def value(self):
        return super().value() or "unresolved"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value()
        if value == "unresolved":
            return queryset.exclude(status=CaseStatus.RESOLVED)
        if value in CaseStatus.values:
            return queryset.filter(status=value)
        return queryset


class AgeBucketFilter(admin.SimpleListFilter):
    title = "age (business days since first seen)"
    parameter_name = "age"

    def lookups(self, request, model_admin):
        return [*((b, f"{b} days") for b in selectors.AGE_BUCKETS), ("gt2", "older than 2 days")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        q = Q(pk__in=[])
        for tenant in _tenants(request):
            if value == "gt2":
                q |= selectors.age_q_at_least(tenant=tenant, days=3)
            elif value in selectors.AGE_BUCKETS:
                q |= selectors.age_bucket_q(tenant=tenant, bucket=value)
        return queryset.filter(q)


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        members = (
            Membership.objects.filter(tenant__in=_tenants(request), role__in=services.DESK_ROLES)
            .values_list("user_id", "user__username")
            .distinct()
            .order_by("user__username")
        )
        return [("mine", "mine"), ("none", "unassigned"), *[(str(uid), name) for uid, name in members]]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "mine":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


class MyRequestsFilter(admin.SimpleListFilter):
    """The cases where I asked for a write-off / force-match: waiting, or rejected with a reason."""

    title = "my requests"
    parameter_name = "my_requests"

    def lookups(self, request, model_admin):
        return [("pending", "waiting for an approver"), ("rejected", "rejected"), ("all", "all")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        mine = ApprovalRequest.objects.filter(requested_by_principal=f"user:{request.user.pk}")
        if self.value() in ("pending", "rejected"):
            mine = mine.filter(status=self.value())
        return queryset.filter(pk__in=mine.values("case_id"))


class SlaBreachedFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return [("breached", "breached"), ("ok", "within SLA")]

    def queryset(self, request, queryset):
        if self.value() == "breached":
            return queryset.filter(selectors.sla_breached_q())
        if self.value() == "ok":
            return queryset.exclude(selectors.sla_breached_q())
        return queryset


class DefinitionFilter(admin.SimpleListFilter):
    title = "definition"
    parameter_name = "definition"

    def lookups(self, request, model_admin):
        rows = (
            model_admin.get_queryset(request)
            .values_list("definition_id", "definition_name")
            .distinct()
            .order_by("definition_name")
        )
        return [(str(i), name) for i, name in rows]

    def queryset(self, request, queryset):
        return (
            queryset.filter(definition_id=int(self.value())) if (self.value() or "").isdigit() else queryset
        )


class CurrencyFilter(admin.SimpleListFilter):
    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        rows = model_admin.get_queryset(request).exclude(currency="").values_list("currency", flat=True)
        return [(c, c) for c in rows.distinct().order_by("currency")]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value()) if self.value() else queryset


class AmountRangeFilter(admin.ListFilter):
    """Amount at stake between a minimum and a maximum (typed in, or one of the usual ranges)."""

    title = "amount at stake"
    template = "admin/exceptions/amount_range_filter.html"
    parameters = ("amount_min", "amount_max")
    ranges = [
        ("", "1000", "< 1k"),
        ("1000", "100000", "1k - 100k"),
        ("100000", "1000000", "100k - 1M"),
        ("1000000", "", "≥ 1M"),
    ]

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in self.parameters:
            if name in params:
                value = params.pop(name)[-1]
                try:
                    self.used_parameters[name] = Decimal(value)
                except InvalidOperation:
                    raise admin.options.IncorrectLookupParameters(f"{name} is not a number") from None

    def has_output(self):
        return True

    def expected_parameters(self):
        return list(self.parameters)

    def queryset(self, request, queryset):
        if "amount_min" in self.used_parameters:
            queryset = queryset.filter(amount_at_stake__gte=self.used_parameters["amount_min"])
        if "amount_max" in self.used_parameters:
            queryset = queryset.filter(amount_at_stake__lt=self.used_parameters["amount_max"])
        return queryset

    def choices(self, changelist):
        current = (
            str(self.used_parameters.get("amount_min", "")),
            str(self.used_parameters.get("amount_max", "")),
        )
        yield {
            "selected": not self.used_parameters,
            "query_string": changelist.get_query_string(remove=list(self.parameters)),
            "display": "All",
        }
        for low, high, label in self.ranges:
            new = {k: v for k, v in (("amount_min", low), ("amount_max", high)) if v}
            yield {
                "selected": current == (low, high),
                "query_string": changelist.get_query_string(new, remove=list(self.parameters)),
                "display": label,
            }
        # The typed-in form keeps the other filters as hidden fields.
        hidden = [
            (k, v)
            for k, values in changelist.params.items()
            if k not in self.parameters
            for v in (values if isinstance(values, list) else [values])
        ]
        yield {"form": True, "hidden": hidden, "min": current[0], "max": current[1]}


# --- action forms --------------------------------------------------------------------------------


class _CasesForm(forms.Form):
    """Base of the bulk-action forms; ``tenants`` limits user and root-cause choices."""

    def __init__(self, *args, tenants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.tenants = tenants


class AssignToForm(_CasesForm):
    assignee = forms.ModelChoiceField(queryset=get_user_model().objects.none())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = (
            get_user_model()
            .objects.filter(memberships__tenant__in=self.tenants, memberships__role__in=services.DESK_ROLES)
            .distinct()
            .order_by("username")
        )


class RootCauseForm(_CasesForm):
    root_cause = forms.ModelChoiceField(queryset=RootCauseCategory.objects.none(), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["root_cause"].queryset = RootCauseCategory.objects.filter(
            tenant__in=self.tenants, is_active=True
        )


class PriorityForm(_CasesForm):
    priority = forms.ChoiceField(choices=Priority.choices)


class ResolveForm(_CasesForm):
    reason = forms.ChoiceField(choices=[(r, r.replace("_", " ")) for r in sorted(MANUAL_REASONS)])
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class ResolutionRequestForm(_CasesForm):
    kind = forms.ChoiceField(choices=ApprovalKind.choices)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="why; the approver reads it")


class DecisionForm(_CasesForm):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


def _apply(modeladmin, request, cases, verb: str, call) -> None:
    """Run ``call(case)`` per case (each its own transaction in the service); report done/skipped."""
    done, skipped = 0, []
    for case in cases:
        try:
            call(case)
            done += 1
        except ApplicationError as exc:
            skipped.append(f"case {case.pk}: {exc.message}")
    if done:
        modeladmin.message_user(request, f"{verb}: {done} case(s).", messages.SUCCESS)
    if skipped:
        modeladmin.message_user(
            request, f"Skipped {len(skipped)}: " + "; ".join(skipped[:10]), messages.WARNING
        )


def _form_action(form_class, title: str):
    """An action that first asks for input (the form sees the user's tenants)."""
    return intermediate_form_action(title, lambda request, data: form_class(data, tenants=_tenants(request)))


def _actor(request) -> Actor:
    return Actor.for_user(request.user)


def _trace_url(trace_id: str) -> str:
    # settings.TRACE_URL_TEMPLATE, e.g. "https://grafana.example/explore?…{trace_id}…" (optional).
    template = getattr(settings, "TRACE_URL_TEMPLATE", "")
    return template.format(trace_id=trace_id) if template and trace_id else ""


class _DeskConfigAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Configuration of the desk: who sees and edits it is the permission table's
    (``permission_area``); cases and audit events refer to it, so it is deactivated, not deleted."""


# --- the desk ------------------------------------------------------------------------------------


@admin.register(Case)
class CaseAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    # No add (runs open cases), no change form (the workflow's actions and the case page), no
    # delete (a case is evidence): the table gives "case" only view, work and approve.
    permission_area = "case"
    action_verbs = {
        **dict.fromkeys(
            [
                "assign_to_me",
                "assign_to",
                "set_root_cause",
                "set_priority",
                "resolve_with_note",
                "request_write_off",
            ],
            "work",
        ),
        "approve": "approve",
        "reject": "approve",
    }
    list_display = [
        "id",
        "type_badge",
        "status_badge",
        "priority",
        "amount",
        "reference",
        "account",
        "instrument",
        "definition_name",
        "assignee",
        "age",
        "sla",
        "run_count",
        "root_cause",
    ]
    list_display_links = ["id", "reference"]
    list_filter = [
        StatusFilter,
        "break_type",
        AgeBucketFilter,
        AssigneeFilter,
        MyRequestsFilter,
        SlaBreachedFilter,
        DefinitionFilter,
        CurrencyFilter,
        AmountRangeFilter,
        "priority",
    ]
    search_fields = ["reference", "account", "instrument"]
    search_help_text = "reference, account or instrument contains"
    list_select_related = ["assignee", "root_cause", "tenant"]
    list_per_page = 50
    show_full_result_count = False  # no second COUNT(*) over a big desk
    ordering = ["-first_seen_at"]
    actions = [
        "assign_to_me",
        "assign_to",
        "set_root_cause",
        "set_priority",
        "resolve_with_note",
        "request_write_off",
        "approve",
        "reject",
    ]

    # columns

    @admin.display(description="type", ordering="break_type")
    def type_badge(self, case):
        return format_html(
            '<span class="jf-type jf-type-{}">{}</span>', case.break_type, case.get_break_type_display()
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, case):
        return format_html(
            '<span class="jf-status jf-status-{}">{}</span>', case.status, case.status.replace("_", " ")
        )

    @admin.display(description="amount at stake", ordering="amount_at_stake")
    def amount(self, case):
        return money_html(case.amount_at_stake, case.currency)

    @admin.display(description="age (bd)", ordering="first_seen_at")
    def age(self, case):
        return selectors.case_age_days(tenant=case.tenant, case=case)

    @admin.display(description="SLA due", ordering="sla_due_at")
    def sla(self, case):
        if case.sla_due_at is None or case.status == CaseStatus.RESOLVED:
            return "—"
        local = calendar.tenant_now(case.tenant, case.sla_due_at)
        if case.sla_due_at < timezone.now():
            return format_html('<span class="jf-breached">BREACHED {}</span>', f"{local:%d %b %H:%M}")
        return f"{local:%d %b %H:%M}"

    # the case page

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path(
                "<int:object_id>/act/",
                self.admin_site.admin_view(self.act_view),
                name="{}_{}_act".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        case = get_object_or_404(self.get_queryset(request).select_related("tenant"), pk=object_id)
        self.require(request, "view", case)
        context = {
            **self.admin_site.each_context(request),
            **presentation.case_page_context(request, case),
            "opts": self.model._meta,
            "title": f"Case {case.pk}: {case.get_break_type_display()}",
            "act_url": reverse("admin:exceptions_case_act", args=[case.pk]),
            "reasons": sorted(MANUAL_REASONS),
            "kinds": ApprovalKind.choices,
            "priorities": Priority.choices,
            "root_causes": RootCauseCategory.objects.filter(tenant=case.tenant, is_active=True),
            "trace_url": _trace_url(case.trace_id),
        }
        return TemplateResponse(request, "admin/exceptions/case/case_page.html", context)

    def act_view(self, request, object_id):
        if request.method != "POST":
            raise PermissionDenied
        case = get_object_or_404(self.get_queryset(request), pk=object_id)
        op, post, user = request.POST.get("op", ""), request.POST, request.user
        self.require(request, "approve" if op in ("approve", "reject") else "work", case)
        common = {"tenant": case.tenant, "actor": _actor(request)}
        handlers = {
            "comment": lambda: services.case_comment_add(
                **common, user=user, case_id=case.pk, body=post.get("body")
            ),
            "assign_me": lambda: services.case_assign(**common, case_id=case.pk, assignee=user),
            "unassign": lambda: services.case_assign(**common, case_id=case.pk, assignee=None),
            "investigate": lambda: services.case_start_investigating(**common, user=user, case_id=case.pk),
            "resolve": lambda: services.case_resolve(
                **common, case_id=case.pk, reason=post.get("reason", ""), note=post.get("note", "")
            ),
            "reopen": lambda: services.case_reopen(**common, case_id=case.pk, note=post.get("note", "")),
            "request": lambda: services.case_request_resolution(
                **common, user=user, case_id=case.pk, kind=post.get("kind", ""), note=post.get("note", "")
            ),
            "approve": lambda: services.approval_decide(
                **common, user=user, case_id=case.pk, approve=True, note=post.get("note", "")
            ),
            "reject": lambda: services.approval_decide(
                **common, user=user, case_id=case.pk, approve=False, note=post.get("note", "")
            ),
            "withdraw": lambda: services.approval_withdraw(
                **common, case_id=case.pk, note=post.get("note", "")
            ),
            "priority": lambda: services.case_set_priority(
                **common, case_id=case.pk, priority=post.get("priority")
            ),
            # A failed run's case: raised to the most urgent priority (its SLA follows).
            "escalate": lambda: services.case_set_priority(
                **common, case_id=case.pk, priority=Priority.CRITICAL
            ),
            "root_cause": lambda: services.case_set_root_cause(
                **common,
                case_id=case.pk,
                root_cause_id=int(post["root_cause"]) if post.get("root_cause") else None,
            ),
        }
        if op not in handlers:
            self.message_user(request, f"Unknown action '{op}'.", messages.ERROR)
        else:
            try:
                result = handlers[op]()
                self.message_user(request, presentation.act_message(op, case, result), messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:exceptions_case_change", args=[case.pk]))

    # bulk actions

    @admin.action(description="Assign to me")
    def assign_to_me(self, request, queryset):
        _apply(
            self,
            request,
            queryset,
            "Assigned to you",
            lambda c: services.case_assign(
                tenant=c.tenant, actor=_actor(request), case_id=c.pk, assignee=request.user
            ),
        )

    @admin.action(description="Assign to…")
    @_form_action(AssignToForm, "Assign cases to")
    def assign_to(self, request, queryset, data):
        _apply(
            self,
            request,
            queryset,
            f"Assigned to {data['assignee']}",
            lambda c: services.case_assign(
                tenant=c.tenant, actor=_actor(request), case_id=c.pk, assignee=data["assignee"]
            ),
        )

    @admin.action(description="Set root cause…")
    @_form_action(RootCauseForm, "Set the root cause of cases")
    def set_root_cause(self, request, queryset, data):
        cause = data["root_cause"]
        _apply(
            self,
            request,
            queryset,
            "Root cause set",
            lambda c: services.case_set_root_cause(
                tenant=c.tenant,
                actor=_actor(request),
                case_id=c.pk,
                root_cause_id=cause.pk if cause else None,
            ),
        )

    @admin.action(description="Set priority…")
    @_form_action(PriorityForm, "Set the priority of cases")
    def set_priority(self, request, queryset, data):
        _apply(
            self,
            request,
            queryset,
            "Priority set",
            lambda c: services.case_set_priority(
                tenant=c.tenant, actor=_actor(request), case_id=c.pk, priority=data["priority"]
            ),
        )

    @admin.action(description="Resolve with a note…")
    @_form_action(ResolveForm, "Resolve cases")
    def resolve_with_note(self, request, queryset, data):
        _apply(
            self,
            request,
            queryset,
            "Resolved",
            lambda c: services.case_resolve(
                tenant=c.tenant, actor=_actor(request), case_id=c.pk, reason=data["reason"], note=data["note"]
            ),
        )

    @admin.action(description="Request write-off / force-match…")
    @_form_action(ResolutionRequestForm, "Request a write-off or force-match")
    def request_write_off(self, request, queryset, data):
        _apply(
            self,
            request,
            queryset,
            "Requested (resolved at once at or below the threshold)",
            lambda c: services.case_request_resolution(
                tenant=c.tenant,
                actor=_actor(request),
                user=request.user,
                case_id=c.pk,
                kind=data["kind"],
                note=data["note"],
            ),
        )

    @admin.action(description="Approve pending write-off / force-match…")
    @_form_action(DecisionForm, "Approve requests")
    def approve(self, request, queryset, data):
        self._decide(request, queryset, data, approve=True)

    @admin.action(description="Reject pending write-off / force-match…")
    @_form_action(DecisionForm, "Reject requests")
    def reject(self, request, queryset, data):
        self._decide(request, queryset, data, approve=False)

    def _decide(self, request, queryset, data, *, approve: bool):
        _apply(
            self,
            request,
            queryset,
            "Approved" if approve else "Rejected",
            lambda c: services.approval_decide(
                tenant=c.tenant,
                actor=_actor(request),
                user=request.user,
                case_id=c.pk,
                approve=approve,
                note=data["note"],
            ),
        )

    class Media:
        css = {"all": ["exceptions/desk.css"]}


# --- configuration: saved through audited services ----------------------------------------------


@admin.register(RootCauseCategory)
class RootCauseCategoryAdmin(_DeskConfigAdmin):
    permission_area = "root_cause"
    list_display = ["name", "code", "tenant", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "code"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *(["code"] if obj else [])]

    def save_model(self, request, obj, form, change):
        saved = services.root_cause_save(
            tenant=obj.tenant,
            actor=_actor(request),
            code=obj.code,
            name=obj.name,
            description=obj.description,
            is_active=obj.is_active,
        )
        obj.pk = saved.pk


@admin.register(ApprovalThreshold)
class ApprovalThresholdAdmin(_DeskConfigAdmin):
    permission_area = "approval_threshold"  # removal ("delete") is audited by the service
    list_display = ["tenant", "currency", "threshold", "updated_at"]

    @admin.display(description="four-eyes above", ordering="amount")
    def threshold(self, obj):
        return money_html(obj.amount, obj.currency)

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *(["currency"] if obj else [])]

    def save_model(self, request, obj, form, change):
        saved = services.approval_threshold_set(
            tenant=obj.tenant, actor=_actor(request), currency=obj.currency, amount=obj.amount
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.approval_threshold_set(
            tenant=obj.tenant, actor=_actor(request), currency=obj.currency, amount=None
        )

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(SlaWebhook)
class SlaWebhookAdmin(_DeskConfigAdmin):
    permission_area = "sla_webhook"
    list_display = ["tenant", "url", "is_active", "updated_at"]

    def save_model(self, request, obj, form, change):
        saved = services.sla_webhook_set(
            tenant=obj.tenant, actor=_actor(request), url=obj.url, secret=obj.secret, is_active=obj.is_active
        )
        obj.pk = saved.pk


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(_DeskConfigAdmin):
    permission_area = "approval"  # view only
    list_display = [
        "id",
        "case",
        "kind",
        "status",
        "amount_display",
        "requested_by_display",
        "requested_at",
        "decided_by_display",
        "decided_at",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["case"]

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return money_html(obj.amount, obj.currency)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_DeskConfigAdmin):
    permission_area = "webhook_delivery"  # view only
    list_display = ["id", "event", "url", "status", "attempts", "response_status", "last_error", "created_at"]
    list_filter = ["status"]
