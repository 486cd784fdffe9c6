"""The desk's filters for the API (django-filter); the admin's list filters use the same selectors."""

import django_filters
from django import forms
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field

from exceptions import selectors
from exceptions.models import BreakType, Case, CaseStatus, Priority
from jfintech.api.tenancy import request_tenant

MAX_AGE_DAYS = 2610


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_AGE_DAYS})
class MinAgeDaysFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


# django-filter's NumberFilter refuses beyond ±1e50; the schema says so.
@extend_schema_field({"type": "number", "minimum": -1e50, "maximum": 1e50})
class AmountFilter(django_filters.NumberFilter):
    """A NumberFilter whose bounds the schema documents."""


class CaseFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=CaseStatus.choices)
    break_type = django_filters.MultipleChoiceFilter(choices=BreakType.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    age_bucket = django_filters.ChoiceFilter(
        choices=[(b, b) for b in selectors.AGE_BUCKETS],
        method="filter_age_bucket",
        help_text="business days since first seen",
    )
    # Bounded: each business day back is a calendar step (100000 took 3.5 s; 10**8 overflowed
    # the date). Ten years of business days is more than any open case's age.
    min_age_days = MinAgeDaysFilter(
        method="filter_min_age",
        help_text=f"at least N business days old (0 to {MAX_AGE_DAYS})",
        min_value=0,
        max_value=MAX_AGE_DAYS,
    )
    assignee = django_filters.CharFilter(method="filter_assignee", help_text='a user id, "me" or "none"')
    sla_breached = django_filters.BooleanFilter(method="filter_sla_breached")
    definition_id = django_filters.NumberFilter()
    currency = django_filters.CharFilter(lookup_expr="iexact")
    amount_min = AmountFilter(field_name="amount_at_stake", lookup_expr="gte")
    amount_max = AmountFilter(field_name="amount_at_stake", lookup_expr="lte")
    root_cause = django_filters.NumberFilter(field_name="root_cause_id")
    q = django_filters.CharFilter(
        method="filter_search", help_text="reference, account or instrument contains"
    )

    class Meta:
        model = Case
        fields = []

    @property
    def tenant(self):
        return request_tenant(self.request)

    def filter_age_bucket(self, queryset, name, value):
        return queryset.filter(selectors.age_bucket_q(tenant=self.tenant, bucket=value))

    def filter_min_age(self, queryset, name, value):
        days = int(value)
        return (
            queryset.filter(selectors.age_q_at_least(tenant=self.tenant, days=days)) if days > 0 else queryset
        )

    def filter_assignee(self, queryset, name, value):
        if value == "me":
            return queryset.filter(assignee=self.request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        return queryset.filter(assignee_id=value) if value.isdigit() else queryset.none()

    def filter_sla_breached(self, queryset, name, value):
        q = selectors.sla_breached_q()
        return queryset.filter(q) if value else queryset.exclude(q)

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(reference__icontains=value) | Q(account__icontains=value) | Q(instrument__icontains=value)
        )
