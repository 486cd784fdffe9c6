"""Reports over the API: JSON by default, ``?export=pdf|csv|xlsx`` for files; the break list
streamed as CSV/XLSX; auditor packs generated (stored as immutable artifacts) and downloaded.

Thin views: the tenant is the request's, the role is asked through the permission table, the
filters pass reporting.surfaces (one input boundary)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from jfintech.api.admission import admits, queue_of
from jfintech.api.idempotency import idempotent
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
