"""Ingestion over the API: sources, file upload, JSON push, batches with totals, rejections, reversal.

Thin views: input serializer → service → output serializer; the tenant is the request's. POSTs
honour ``Idempotency-Key``. A loaded batch answers 201, a duplicate 200, a rejected file 422 (the
batch, with its reason, is stored and returned either way).
"""

from __future__ import annotations

import tempfile
from decimal import Decimal

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from jfintech.api import boundary
from jfintech.api.idempotency import idempotent
from jfintech.api.pagination import get_paginated_response
from jfintech.api.permissions import actor_for_request, tenant_may
from jfintech.api.tenancy import request_tenant
from jfintech.common.errors import ApplicationError
from reconciliation.ingestion import selectors, services
from reconciliation.ingestion.filters import BatchFilter, RejectionFilter
from reconciliation.ingestion.formats import FORMATS
from reconciliation.models import DataSource, IngestionBatch, Rejection

FIRST_REJECTIONS = 20
_CHUNK_READ = 64 * 1024


def max_upload_bytes() -> tuple[int, str]:
    """The upload limit and the setting that sets it."""
    return settings.INGEST_MAX_UPLOAD_BYTES, "INGEST_MAX_UPLOAD_BYTES"


def max_push_bytes() -> tuple[int, str]:
    """A JSON push is parsed in memory: the smaller of the upload limit and Django's in-memory
    request limit, named by whichever of the two it is."""
    limits = [max_upload_bytes()]
    if settings.DATA_UPLOAD_MAX_MEMORY_SIZE is not None:
        limits.append((settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "DATA_UPLOAD_MAX_MEMORY_SIZE"))
    return min(limits)


def _too_large(size: str, limit: int, setting: str, extra: dict) -> ApplicationError:
    return ApplicationError(
        f"The upload is {size} bytes; the maximum is {limit} bytes ({setting}). Split the file or ask "
        f"an administrator to raise {setting}.",
        code="upload_too_large", status=413, extra={"max_bytes": limit, "setting": setting, **extra},
    )  # fmt: skip


def _source_or_404(request, source_id: int) -> DataSource:
    source = selectors.source_get(tenant=request_tenant(request), source_id=source_id)
    if source is None:
        raise ApplicationError(f"No source {source_id} in this tenant.", code="source_not_found", status=404)
    return source


def _batch_or_404(request, batch_id: int) -> IngestionBatch:
    batch = selectors.batch_get(tenant=request_tenant(request), batch_id=batch_id)
    if batch is None:
        raise ApplicationError(f"No batch {batch_id} in this tenant.", code="batch_not_found", status=404)
    return batch


class SourceOutput(serializers.ModelSerializer):
    re_reports = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    re_reported_by = serializers.SerializerMethodField()

    def get_re_reported_by(self, source) -> str | None:
        partner = getattr(source, "re_reported_by", None)  # the reverse one-to-one: absent raises
        return partner.name if partner else None

    class Meta:
        model = DataSource
        fields = [
            "id",
            "name",
            "kind",
            "format",
            "mapping",
            "connector",
            "is_active",
            "accept_empty",
            "re_reports",
            "re_reported_by",
            "created_at",
            "updated_at",
        ]


class SourceInput(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    kind = serializers.CharField()
    format = serializers.CharField(default="csv")
    mapping = serializers.DictField(default=dict)
    connector = serializers.DictField(default=dict)
    is_active = serializers.BooleanField(default=True)
    accept_empty = serializers.BooleanField(default=False)
    # The name of the statement source whose entries this one re-reports (docs/ingestion.md).
    re_reports = serializers.SlugField(max_length=64, required=False, allow_null=True, default=None)


class RejectionOutput(serializers.ModelSerializer):
    class Meta:
        model = Rejection
        fields = ["id", "line_no", "reason", "message", "raw"]


class BatchOutput(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")
    source_id = serializers.IntegerField()
    control_totals = serializers.SerializerMethodField()
    first_rejections = serializers.SerializerMethodField()

    class Meta:
        model = IngestionBatch
        fields = [
            "id", "source", "source_id", "file_name", "sha256", "size_bytes", "detected_format", "status",
            "rows_total", "rows_accepted", "rows_rejected", "rows_linked", "control_totals", "reject_code",
            "reject_reason", "duplicate_of", "timings", "trace_id", "created_by", "received_at",
            "completed_at", "reversed_at", "reversed_by", "reverse_reason", "first_rejections",
        ]  # fmt: skip

    def get_control_totals(self, batch) -> dict:
        return {"declared": batch.declared_totals, "computed": batch.computed_totals}

    def get_first_rejections(self, batch) -> list:
        if not self.context.get("with_rejections"):
            return []
        rows = selectors.rejections_for_batch(tenant=batch.tenant, batch=batch)[:FIRST_REJECTIONS]
        return RejectionOutput(rows, many=True).data


def batch_response(batch: IngestionBatch, *, created: bool = True) -> Response:
    code = {
        IngestionBatch.Status.DUPLICATE: status.HTTP_200_OK,
        IngestionBatch.Status.REJECTED: status.HTTP_422_UNPROCESSABLE_ENTITY,
    }.get(batch.status, status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    data = BatchOutput(batch, context={"with_rejections": True}).data
    return Response(data, status=code, headers={"Location": f"/api/v1/ingestion/batches/{batch.pk}/"})


class SizeLimitedMixin:
    """One size limit per endpoint, enforced before the body is parsed, whatever the transfer
    encoding: a declared Content-Length over it is refused unread (413); a chunked body has no
    length to declare, so it is read into a spooled file, and refused (413) as soon as it passes
    the limit. Django reads a WSGI body only up to CONTENT_LENGTH (none: nothing, so a chunked
    JSON push used to arrive empty, 400); the buffered body is handed on with its length."""

    def size_limit(self) -> tuple[int, str]:
        return max_upload_bytes()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        limit, setting = self.size_limit()
        meta = request._request.META
        if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() and not meta.get("CONTENT_LENGTH"):
            self._buffer_chunked(request._request, limit, setting)
            return
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            raise _too_large(str(length), limit, setting, {"size_bytes": length})

    @staticmethod
    def _buffer_chunked(django_request, limit: int, setting: str) -> None:
        body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
        size, source = 0, django_request.META["wsgi.input"]
        while chunk := source.read(_CHUNK_READ):
            size += len(chunk)
            if size > limit:
                body.close()
                raise _too_large(f"more than {limit}", limit, setting, {})
            body.write(chunk)
        body.seek(0)
        django_request.META["CONTENT_LENGTH"] = str(size)
        django_request._stream = LimitedStream(body, size)  # what WSGIRequest builds from a length


class SourceListApi(APIView):
    permission_classes = [tenant_may("source")]  # GET view, POST add (creates or updates)

    @extend_schema(responses=SourceOutput(many=True))
    def get(self, request):
        return get_paginated_response(
            queryset=selectors.sources_for_tenant(tenant=request_tenant(request)),
            serializer_class=SourceOutput, request=request, view=self,
        )  # fmt: skip

    @extend_schema(request=SourceInput, responses={201: SourceOutput, 200: SourceOutput})
    @idempotent
    def post(self, request):
        data = SourceInput(data=request.data)
        data.is_valid(raise_exception=True)
        source, outcome = services.source_upsert(
            tenant=request_tenant(request), actor=actor_for_request(request), **data.validated_data
        )
        return Response(SourceOutput(source).data, status=201 if outcome == "created" else 200)


class SourceDetailApi(APIView):
    permission_classes = [tenant_may("source", "view")]

    @extend_schema(responses=SourceOutput)
    def get(self, request, source_id: int):
        return Response(SourceOutput(_source_or_404(request, source_id)).data)


UPLOAD_SCHEMA = inline_serializer(
    "BatchUpload",
    {"file": serializers.FileField(), "format": serializers.ChoiceField(["auto", *FORMATS], required=False)},
)


class BatchUploadApi(SizeLimitedMixin, APIView):
    """Upload one file (multipart field ``file``, optional ``format``) to a source as one batch."""

    permission_classes = [tenant_may("source", "upload")]
    parser_classes = [boundary.MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": UPLOAD_SCHEMA},
        responses={201: BatchOutput, 200: BatchOutput, 422: BatchOutput, 413: None},
    )
    @idempotent
    def post(self, request, source_id: int):
        source = _source_or_404(request, source_id)
        upload = request.FILES.get("file")
        if upload is None:
            raise ApplicationError("Send the file as the multipart field 'file'.", code="file_required")
        limit, setting = self.size_limit()
        if upload.size > limit:
            raise _too_large(str(upload.size), limit, setting, {"size_bytes": upload.size})
        fmt = request.data.get("format") or "auto"
        batch = services.batch_ingest_file(
            tenant=request_tenant(request), actor=actor_for_request(request), source=source,
            fileobj=upload, file_name=upload.name, format=fmt,
        )  # fmt: skip
        return batch_response(batch)


class DecimalJSONParser(boundary.JSONParser):
    """Amounts pushed as JSON numbers are read as Decimal, never float (behind the input boundary:
    a NUL byte in a field name or value is refused before it reaches COPY)."""

    parse_float = Decimal


class RecordsPushApi(SizeLimitedMixin, APIView):
    """Push JSON records: ``{"records": [{"external_id", "business_date", "amount", ...}, ...]}``."""

    permission_classes = [tenant_may("source", "upload")]
    parser_classes = [DecimalJSONParser]

    def size_limit(self) -> tuple[int, str]:
        return max_push_bytes()

    @extend_schema(
        request=inline_serializer(
            "RecordsPush", {"records": serializers.ListField(child=serializers.DictField())}
        ),
        responses={201: BatchOutput, 200: BatchOutput, 422: BatchOutput},
    )
    @idempotent
    def post(self, request, source_id: int):
        source = _source_or_404(request, source_id)
        records = request.data.get("records") if isinstance(request.data, dict) else None
        if not isinstance(records, list):
            raise ApplicationError('Send {"records": [...]}.', code="invalid")
        batch = services.batch_ingest_records(
            tenant=request_tenant(request), actor=actor_for_request(request), source=source, records=records
        )
        return batch_response(batch)


class BatchListApi(APIView):
    permission_classes = [tenant_may("batch", "view")]

    @extend_schema(responses=BatchOutput(many=True))
    def get(self, request):
        queryset = BatchFilter(request.GET, selectors.batches_for_tenant(tenant=request_tenant(request))).qs
        return get_paginated_response(
            queryset=queryset, serializer_class=BatchOutput, request=request, view=self
        )


class BatchDetailApi(APIView):
    permission_classes = [tenant_may("batch", "view")]

    @extend_schema(responses=BatchOutput)
    def get(self, request, batch_id: int):
        return Response(BatchOutput(_batch_or_404(request, batch_id), context={"with_rejections": True}).data)


class RejectionListApi(APIView):
    """A batch's rejections; filter with ``reason`` (repeatable), ``line_from``, ``line_to``, ``q``."""

    permission_classes = [tenant_may("batch", "view")]

    @extend_schema(responses=RejectionOutput(many=True))
    def get(self, request, batch_id: int):
        batch = _batch_or_404(request, batch_id)
        filtered = RejectionFilter(
            request.GET, selectors.rejections_for_batch(tenant=batch.tenant, batch=batch)
        )
        if not filtered.is_valid():
            raise ApplicationError("Invalid filter.", code="invalid", extra=filtered.errors)
        return get_paginated_response(queryset=filtered.qs, serializer_class=RejectionOutput, request=request,
                                      view=self)  # fmt: skip


class BatchReverseInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class BatchReverseApi(APIView):
    permission_classes = [tenant_may("batch", "reverse")]

    @extend_schema(request=BatchReverseInput, responses=BatchOutput)
    @idempotent
    def post(self, request, batch_id: int):
        data = BatchReverseInput(data=request.data)
        data.is_valid(raise_exception=True)
        batch = services.batch_reverse(
            tenant=request_tenant(request), actor=actor_for_request(request),
            batch=_batch_or_404(request, batch_id), reason=data.validated_data["reason"],
        )  # fmt: skip
        return Response(BatchOutput(batch).data)
