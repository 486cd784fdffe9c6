"""Reports over the API: JSON by default, ``?export=pdf|csv|xlsx`` for files; the break list
streamed as CSV/XLSX; auditor packs generated (stored as immutable artifacts) and downloaded.

Thin views: the tenant is the request's, the role is asked through the permission table, the
filters pass reporting.surfaces (one input boundary)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from jfintech.api.admission import admits, queue_of
from jfintech.api.idempotency import idempotent
from jfintech.api.pagination import get_paginated_response
from jfintech.api.permissions import actor_for_request, tenant_may
from jfintech.api.tenancy import request_tenant
from jfintech.common.errors import ApplicationError
from reconciliation.runs import selectors as run_selectors
from reporting import selectors, services, storage, surfaces

EXPORT = OpenApiParameter(
    "export", str, enum=list(surfaces.EXPORTS), description="json (default), pdf, csv, xlsx"
)
REPORT = inline_serializer(
    "Report",
    {"kind": serializers.CharField(), "header": serializers.DictField(), "tables": serializers.ListField()},
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A report answers JSON, or the file ``?export=`` names: each content type is documented.
REPORT_RESPONSES = {
    (200, "application/json"): REPORT,
    (200, "application/pdf"): bytes,
    (200, "text/csv"): bytes,
    (200, XLSX): bytes,
}


def _answer(request, report):
    export = surfaces.export_of({"export": request.query_params.get("export", "json")})
    if export in ("json", "html"):
        return Response(report.as_dict())
    return surfaces.file_response(report, export)


class _ReportApi(APIView):
    permission_classes = [tenant_may("report", "view")]
    kind = ""

    def get(self, request, **kwargs):
        report = surfaces.build(
            self.kind,
            tenant=request_tenant(request),
            params=request.query_params,
            user=request.user,
            **kwargs,
        )
        return _answer(request, report)


@extend_schema(parameters=[EXPORT], responses=REPORT_RESPONSES)
class RunReportApi(_ReportApi):
    kind = "run"


@extend_schema(
    parameters=[EXPORT, OpenApiParameter("by", str, enum=["break_type", "root_cause", "assignee"])],
    responses=REPORT_RESPONSES,
)
class AgingReportApi(_ReportApi):
    kind = "aging"


@extend_schema(
    parameters=[EXPORT, OpenApiParameter("from", str), OpenApiParameter("to", str)],
    responses=REPORT_RESPONSES,
)
class TrendsReportApi(_ReportApi):
    kind = "trends"


@extend_schema(
    parameters=[EXPORT, OpenApiParameter("at", str, description="ISO-8601 moment")],
    responses=REPORT_RESPONSES,
)
class InventoryReportApi(_ReportApi):
    kind = "inventory"


@extend_schema(
    parameters=[
        EXPORT,
        OpenApiParameter("definition", int),
        OpenApiParameter("account", str),
        OpenApiParameter("currency", str),
        OpenApiParameter("to", str, description="period end"),
    ],
    responses=REPORT_RESPONSES,
)
class StatementReportApi(_ReportApi):
    kind = "statement"


class BreakExportApi(APIView):
    permission_classes = [tenant_may("report", "view")]

    @extend_schema(
        parameters=[
            OpenApiParameter("export", str, enum=["csv", "xlsx"]),
            OpenApiParameter("status", str),
            OpenApiParameter("definition", int),
        ],
        responses={(200, "text/csv"): bytes, (200, XLSX): bytes},
    )
    def get(self, request):
        return surfaces.cases_export(
            tenant=request_tenant(request), params=request.query_params, user=request.user
        )


class ArtifactOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    filename = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    generator_version = serializers.CharField()
    inputs_as_of = serializers.DateTimeField()
    generated_at = serializers.DateTimeField()
    generated_by = serializers.CharField()


class PackInput(serializers.Serializer):
    definition = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    date_from = serializers.DateField()
    date_to = serializers.DateField()


class AuditorPackApi(APIView):
    permission_classes = [tenant_may("report", "pack")]

    @extend_schema(request=PackInput, responses={201: ArtifactOutput})
    @idempotent
    def post(self, request):
        data = PackInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = request_tenant(request)
        definition = run_selectors.definition_get(
            tenant=tenant, definition_id=data.validated_data["definition"]
        )
        if definition is None:
            raise ApplicationError("No such definition in this tenant.", code="report_not_found", status=404)
        artifact = services.pack_generate(
            tenant=tenant,
            actor=actor_for_request(request),
            user=request.user,
            definition=definition,
            date_from=data.validated_data["date_from"],
            date_to=data.validated_data["date_to"],
        )
        return Response(ArtifactOutput(artifact).data, status=201)


class ArtifactDownloadApi(APIView):
    permission_classes = [tenant_may("report", "view")]

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, artifact_id: int):
        artifact = selectors.artifact_get(tenant=request_tenant(request), artifact_id=artifact_id)
        if artifact is None:
            raise ApplicationError(
                f"No artifact {artifact_id} in this tenant.", code="report_not_found", status=404
            )
        response = StreamingHttpResponse(
            storage.artifact_chunks(artifact), content_type="application/octet-stream"
        )
        response["Content-Disposition"] = f'attachment; filename="{artifact.filename}"'
        response["Content-Length"] = str(artifact.size)
        response["X-Content-SHA256"] = artifact.sha256
        return response


class ExportJobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    format = serializers.CharField()
    filters = serializers.DictField()
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)  # blank until the job fails
    artifact_id = serializers.IntegerField(allow_null=True)
    download = serializers.SerializerMethodField()

    def get_download(self, job) -> str | None:
        if job.artifact_id is None:
            return None
        return self.context["request"].build_absolute_uri(
            reverse("v1:report-artifact-download", kwargs={"artifact_id": job.artifact_id})
        )


class ExportJobInput(serializers.Serializer):
    export = serializers.ChoiceField(choices=["csv", "xlsx"])
    status = serializers.CharField(required=False, allow_blank=True, max_length=20)
    definition = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class ExportJobListApi(APIView):
    """POST: export the break list as a task (202, then poll the job for progress and the link)."""

    permission_classes = [tenant_may("report", "generate")]

    @extend_schema(request=ExportJobInput, responses={202: ExportJobOutput})
    @idempotent
    @admits(queue_of("reporting.run_export"))
    def post(self, request):
        data = ExportJobInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.export_job_start(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            user=request.user,
            fmt=data.validated_data["export"],
            filters={
                "status": data.validated_data.get("status", ""),
                "definition": data.validated_data.get("definition"),
            },
        )
        return Response(ExportJobOutput(job, context={"request": request}).data, status=202)


class ExportJobDetailApi(APIView):
    permission_classes = [tenant_may("report", "view")]

    @extend_schema(responses=ExportJobOutput)
    def get(self, request, job_id: int):
        job = selectors.export_job_get(tenant=request_tenant(request), job_id=job_id)
        if job is None:
            raise ApplicationError(f"No export {job_id} in this tenant.", code="report_not_found", status=404)
        return Response(ExportJobOutput(job, context={"request": request}).data)


# --- Report subscriptions (scheduled delivery) --------------------------------------------------


class SubscriptionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    filters = serializers.DictField(child=serializers.CharField())
    format = serializers.CharField()
    recipients = serializers.ListField(child=serializers.CharField())
    webhook = serializers.BooleanField()
    cron = serializers.SerializerMethodField()
    timezone = serializers.CharField(source="tenant.timezone")
    expire_seconds = serializers.SerializerMethodField()
    is_active = serializers.BooleanField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_cron(self, sub) -> str | None:
        return services.subscription_cron(sub)

    def get_expire_seconds(self, sub) -> int | None:
        return sub.schedule.expire_seconds if sub.schedule is not None else None


class SubscriptionUpdateInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=services.SUBSCRIBABLE)
    filters = serializers.DictField(
        child=serializers.CharField(max_length=40),
        default=dict,
        help_text="The report's filters as its endpoint takes them: aging `by`; trends `from`, `to`; "
        "inventory `at`.",
    )
    format = serializers.ChoiceField(choices=services.SUBSCRIPTION_FORMATS, default="pdf")
    # Addresses and the cron are checked by the service (invalid_recipient, invalid_cron), as in the admin.
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=254), default=list, max_length=services.MAX_RECIPIENTS
    )
    webhook = serializers.BooleanField(default=False, help_text="also POST to the tenant's signed webhook")
    cron = serializers.CharField(
        max_length=100, help_text="minute hour day-of-month month day-of-week, in the tenant's time zone"
    )
    expire_seconds = serializers.IntegerField(min_value=1, max_value=7 * 86400, default=3600)
    is_active = serializers.BooleanField(default=True)


class SubscriptionCreateInput(SubscriptionUpdateInput):
    name = serializers.SlugField(max_length=64)


SUBSCRIPTION_EXAMPLE = OpenApiExample(
    "Weekday aging by root cause, to the controller and the webhook",
    request_only=True,
    value={
        "name": "morning-aging",
        "kind": "aging",
        "filters": {"by": "root_cause"},
        "format": "pdf",
        "recipients": ["controller@bank.example"],
        "webhook": True,
        "cron": "0 7 * * 1-5",
        "expire_seconds": 1800,
    },
)


def _subscription_or_404(request, subscription_id: int):
    sub = selectors.subscription_get(tenant=request_tenant(request), subscription_id=subscription_id)
    if sub is None:
        raise ApplicationError(
            f"No subscription {subscription_id} in this tenant.", code="report_not_found", status=404
        )
    return sub


def _save(request, data: dict, **kwargs):
    return services.subscription_save(
        tenant=request_tenant(request),
        actor=actor_for_request(request),
        kind=data["kind"],
        filters=data["filters"],
        fmt=data["format"],
        recipients=data["recipients"],
        webhook=data["webhook"],
        cron=data["cron"],
        expire_seconds=data["expire_seconds"],
        is_active=data["is_active"],
        require_webhook=True,
        **kwargs,
    )


class SubscriptionListApi(APIView):
    """The tenant's report subscriptions; POST creates one with its beat entry (approver, admin)."""

    permission_classes = [tenant_may("report_subscription")]

    @extend_schema(responses=SubscriptionOutput(many=True))
    def get(self, request):
        return get_paginated_response(
            queryset=selectors.subscription_list(tenant=request_tenant(request)),
            serializer_class=SubscriptionOutput,
            request=request,
            view=self,
        )

    @extend_schema(
        request=SubscriptionCreateInput,
        responses={201: SubscriptionOutput},
        examples=[SUBSCRIPTION_EXAMPLE],
        description="Errors: `invalid_report_filter`, `invalid_recipient`, `invalid_cron`, "
        "`invalid_expire_seconds`, `webhook_not_configured` (400), `subscription_exists` (409).",
    )
    @idempotent
    def post(self, request):
        data = SubscriptionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        sub = _save(request, data.validated_data, name=data.validated_data["name"], new=True)
        return Response(SubscriptionOutput(sub).data, status=201)


class SubscriptionDetailApi(APIView):
    """One subscription: PUT replaces it, PATCH changes the fields given (the name stays), DELETE
    deactivates it (its beat entry disabled; its delivery log kept)."""

    permission_classes = [tenant_may("report_subscription", DELETE="change")]

    @extend_schema(responses=SubscriptionOutput)
    def get(self, request, subscription_id: int):
        return Response(SubscriptionOutput(_subscription_or_404(request, subscription_id)).data)

    @extend_schema(request=SubscriptionUpdateInput, responses=SubscriptionOutput)
    def put(self, request, subscription_id: int):
        sub = _subscription_or_404(request, subscription_id)
        data = SubscriptionUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(SubscriptionOutput(_save(request, data.validated_data, name=sub.name)).data)

    @extend_schema(request=SubscriptionUpdateInput, responses=SubscriptionOutput)
    def patch(self, request, subscription_id: int):
        sub = _subscription_or_404(request, subscription_id)
        data = SubscriptionUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        current = {
            "kind": sub.kind,
            "filters": sub.filters,
            "format": sub.format,
            "recipients": list(sub.recipients),
            "webhook": sub.webhook,
            "cron": services.subscription_cron(sub),
            "expire_seconds": sub.schedule.expire_seconds if sub.schedule is not None else None,
            "is_active": sub.is_active,
        }
        saved = _save(request, current | data.validated_data, name=sub.name)
        return Response(SubscriptionOutput(saved).data)

    @extend_schema(responses=SubscriptionOutput, description="Deactivates (never deletes) the subscription.")
    def delete(self, request, subscription_id: int):
        sub = services.subscription_deactivate(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            subscription=_subscription_or_404(request, subscription_id),
        )
        return Response(SubscriptionOutput(sub).data)
