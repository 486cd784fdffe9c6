import django_filters

from reconciliation.models import IngestionBatch, Rejection, RejectionReason


class BatchFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=IngestionBatch.Status.choices)
    source = django_filters.NumberFilter(field_name="source_id")

    class Meta:
        model = IngestionBatch
        fields = ["status", "source"]


class RejectionFilter(django_filters.FilterSet):
    reason = django_filters.MultipleChoiceFilter(choices=RejectionReason.choices)
    line_from = django_filters.NumberFilter(field_name="line_no", lookup_expr="gte")
    line_to = django_filters.NumberFilter(field_name="line_no", lookup_expr="lte")
    q = django_filters.CharFilter(field_name="raw", lookup_expr="icontains")

    class Meta:
        model = Rejection
        fields = ["reason", "line_from", "line_to", "q"]
