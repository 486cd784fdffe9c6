from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from jfintech.api.pagination import get_paginated_response
from jfintech.api.permissions import tenant_may
from jfintech.api.tenancy import request_tenant
from jfintech.audit import selectors
from jfintech.audit.models import AuditEvent

FILTERS = ["action", "object_type", "object_id", "actor_kind", "actor_id"]


class AuditEventOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "actor_kind",
            "actor_id",
            "actor_display",
            "action",
            "object_type",
            "object_id",
            "before",
            "after",
            "request_id",
            "trace_id",
        ]


class AuditEventListApi(APIView):
    permission_classes = [tenant_may("audit", "view")]

    @extend_schema(
        parameters=[OpenApiParameter(f, str) for f in FILTERS], responses=AuditEventOutput(many=True)
    )
    def get(self, request):
        qs = selectors.audit_event_list(
            tenant=request_tenant(request), filters={f: request.query_params.get(f) for f in FILTERS}
        )
        return get_paginated_response(
            queryset=qs, serializer_class=AuditEventOutput, request=request, view=self
        )


class AuditEventDetailApi(APIView):
    permission_classes = [tenant_may("audit", "view")]

    @extend_schema(responses=AuditEventOutput)
    def get(self, request, event_id: int):
        event = get_object_or_404(selectors.audit_event_list(tenant=request_tenant(request)), pk=event_id)
        return Response(AuditEventOutput(event).data)
