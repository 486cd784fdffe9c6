"""The compliance desk over the API, mirroring the workflow: data in, prepare, validate, request
approval, approve (with the readiness-gate override), package, submit, acknowledge, amend.

Thin views: input serializer → service → output serializer. The tenant is the request's; POSTs
honour ``Idempotency-Key``; errors have the standard shape (docs/api.md).
"""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from filings import sar, selectors, services
from filings.models import Filing, FilingLineage, FilingSubject, Package
from filings.validation import catalog
from jfintech.api import boundary
from jfintech.api.idempotency import idempotent
from jfintech.api.permissions import actor_for_request, tenant_may
from jfintech.api.tenancy import request_tenant
from jfintech.common.errors import ApplicationError


def _filing_or_404(request, filing_id: int) -> Filing:
    filing = selectors.filing_get(tenant=request_tenant(request), filing_id=filing_id)
    if filing is None:
        raise ApplicationError(f"No filing {filing_id} in this tenant.", code="filing_not_found", status=404)
    return filing


def _package_or_404(request, package_id: int) -> Package:
    package = selectors.package_get(tenant=request_tenant(request), package_id=package_id)
    if package is None:
        raise ApplicationError(
            f"No package {package_id} in this tenant.", code="package_not_found", status=404
        )
    return package


class FilingSubjectOutput(serializers.ModelSerializer):
    party_version = serializers.IntegerField(source="party_version.version", default=None)

    class Meta:
        model = FilingSubject
        fields = ["party_key", "party_version", "role", "cash_in", "cash_out", "transactions"]


class FilingLineageOutput(serializers.ModelSerializer):
    external_id = serializers.CharField(source="transaction.external_id")
    transaction_version = serializers.IntegerField(source="transaction.version")

    class Meta:
        model = FilingLineage
        fields = [
            "external_id",
            "transaction_version",
            "direction",
            "amount",
            "currency",
            "usd_per_unit",
            "amount_usd",
            "rate_source",
        ]


class FilingOutput(serializers.ModelSerializer):
    class Meta:
        model = Filing
        fields = [
            "id",
            "kind",
            "status",
            "subject_key",
            "period_start",
            "period_end",
            "due_date",
            "version",
            "parent",
            "prior_bsa_id",
            "bsa_id",
            "total_cash_in",
            "total_cash_out",
            "errors",
            "preparer",
            "approver",
            "approved_at",
            "gate_override",
            "package",
            "prepared_at",
        ]


class FilingDetailOutput(FilingOutput):
    subjects = FilingSubjectOutput(many=True)
    lineage = FilingLineageOutput(many=True)
    versions = serializers.SerializerMethodField()

    class Meta(FilingOutput.Meta):
        fields = [
            *FilingOutput.Meta.fields,
            *services.SAR_DRAFT_FIELDS,
            "subjects",
            "lineage",
            "versions",
        ]

    def get_versions(self, obj) -> list[dict]:
        return [
            {"id": f.pk, "version": f.version, "status": f.status, "bsa_id": f.bsa_id}
            for f in selectors.filing_chain(filing=obj)
        ]


class FilingPackageOutput(serializers.ModelSerializer):
    class Meta:
        model = Package
        fields = [
            "id",
            "kind",
            "sha256",
            "size_bytes",
            "manifest",
            "created_at",
            "created_by",
            "submitted_at",
        ]


class FilingListApi(ListAPIView):
    """Filings of the tenant; ``?status=``, ``?kind=``, ``?deadline=overdue``."""

    permission_classes = [tenant_may("filing", "view")]
    serializer_class = FilingOutput
    queryset = Filing.objects.none()

    def get_queryset(self):
        from django.utils import timezone

        tenant = request_tenant(self.request)
        qs = selectors.filing_list(tenant=tenant).order_by("due_date", "pk")
        params = self.request.query_params
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        if params.get("kind"):
            qs = qs.filter(kind=params["kind"])
        if params.get("deadline") == "overdue":
            qs = qs.filter(pk__in=selectors.filings_overdue(tenant=tenant, today=timezone.now().date()))
        return qs


class FilingDetailApi(APIView):
    permission_classes = [tenant_may("filing", "view")]

    @extend_schema(responses=FilingDetailOutput)
    def get(self, request, filing_id: int):
        return Response(FilingDetailOutput(_filing_or_404(request, filing_id)).data)


class CtrPrepareInput(serializers.Serializer):
    first = serializers.DateField()
    last = serializers.DateField(required=False, allow_null=True, default=None)


class CtrPrepareApi(APIView):
    """Aggregate the period's cash transactions into draft CTRs (idempotent)."""

    permission_classes = [tenant_may("filing", "prepare")]

    @extend_schema(request=CtrPrepareInput, responses={201: OpenApiTypes.OBJECT})
    @idempotent
    def post(self, request):
        data = CtrPrepareInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.ctr_prepare(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            first=data.validated_data["first"],
            last=data.validated_data["last"],
        )
        body = {"filings": result.filings, "excluded": result.excluded, "lineage_rows": result.lineage_rows}
        return Response(body, status=status.HTTP_201_CREATED)


class _FilingActionApi(APIView):
    """A workflow step on one filing: each subclass names its service in ``call(request, tenant,
    actor, filing_id, data)``, which returns the filing."""

    verb = "prepare"
    input_class = None

    @idempotent
    def post(self, request, filing_id: int):
        data = {}
        if self.input_class is not None:
            form = self.input_class(data=request.data)
            form.is_valid(raise_exception=True)
            data = form.validated_data
        filing = self.call(request, request_tenant(request), actor_for_request(request), filing_id, data)
        return Response(FilingOutput(filing).data)


class FilingValidateApi(_FilingActionApi):
    permission_classes = [tenant_may("filing", "prepare")]

    @extend_schema(request=None, responses=FilingOutput)
    def post(self, request, filing_id: int):
        return super().post(request, filing_id)

    def call(self, request, tenant, actor, filing_id, data):
        return services.filing_validate(tenant=tenant, actor=actor, filing_id=filing_id)


class FilingRequestApprovalApi(_FilingActionApi):
    permission_classes = [tenant_may("filing", "prepare")]

    @extend_schema(request=None, responses=FilingOutput)
    def post(self, request, filing_id: int):
        return super().post(request, filing_id)

    def call(self, request, tenant, actor, filing_id, data):
        return services.filing_request_approval(tenant=tenant, actor=actor, filing_id=filing_id)


class FilingApproveInput(serializers.Serializer):
    override_case_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, max_length=1000
    )
    override_reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class FilingApproveApi(_FilingActionApi):
    """Four eyes (not the preparer); open breaks above the threshold need ``override_case_ids``
    naming each of them and an ``override_reason``."""

    permission_classes = [tenant_may("filing", "approve")]
    input_class = FilingApproveInput

    @extend_schema(request=FilingApproveInput, responses=FilingOutput)
    def post(self, request, filing_id: int):
        return super().post(request, filing_id)

    def call(self, request, tenant, actor, filing_id, data):
        return services.filing_approve(tenant=tenant, actor=actor, filing_id=filing_id, **data)


class FilingReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class FilingSendBackApi(_FilingActionApi):
    permission_classes = [tenant_may("filing", "approve")]
    input_class = FilingReasonInput

    @extend_schema(request=FilingReasonInput, responses=FilingOutput)
    def post(self, request, filing_id: int):
        return super().post(request, filing_id)

    def call(self, request, tenant, actor, filing_id, data):
        return services.filing_send_back(
            tenant=tenant, actor=actor, filing_id=filing_id, reason=data["reason"]
        )


class FilingAmendApi(_FilingActionApi):
    permission_classes = [tenant_may("filing", "prepare")]

    @extend_schema(request=None, responses=FilingOutput)
    def post(self, request, filing_id: int):
        return super().post(request, filing_id)

    def call(self, request, tenant, actor, filing_id, data):
        return services.filing_amend(tenant=tenant, actor=actor, filing_id=filing_id)


class FilingPackageInput(serializers.Serializer):
    filing_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=20000
    )


class PackageListApi(ListAPIView):
    permission_classes = [tenant_may("filing_package", GET="view", POST="filing.package")]
    serializer_class = FilingPackageOutput
    queryset = Package.objects.none()

    def get_queryset(self):
        return selectors.package_list(tenant=request_tenant(self.request)).order_by("-pk")

    @extend_schema(request=FilingPackageInput, responses={201: FilingPackageOutput})
    @idempotent
    def post(self, request):
        data = FilingPackageInput(data=request.data)
        data.is_valid(raise_exception=True)
        package = services.package_create(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            filing_ids=data.validated_data["filing_ids"],
        )
        return Response(FilingPackageOutput(package).data, status=status.HTTP_201_CREATED)


class PackageDetailApi(APIView):
    permission_classes = [tenant_may("filing_package", "view")]

    @extend_schema(responses=FilingPackageOutput)
    def get(self, request, package_id: int):
        return Response(FilingPackageOutput(_package_or_404(request, package_id)).data)


class PackageXmlApi(APIView):
    """The batch file exactly as packaged (its sha256 is the manifest's)."""

    permission_classes = [tenant_may("filing_package", "view")]

    @extend_schema(responses={(200, "application/xml"): bytes})
    def get(self, request, package_id: int):
        package = _package_or_404(request, package_id)
        response = HttpResponse(bytes(package.xml), content_type="application/xml")
        response["Content-Disposition"] = f'attachment; filename="ctrx-package-{package.pk}.xml"'
        return response


class PackageSubmitApi(APIView):
    permission_classes = [tenant_may("filing", "transmit")]

    @extend_schema(request=None, responses=FilingPackageOutput)
    @idempotent
    def post(self, request, package_id: int):
        package = services.package_submit(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            package_id=_package_or_404(request, package_id).pk,
        )
        return Response(FilingPackageOutput(package).data)


class PackageAcknowledgementApi(APIView):
    """FinCEN's acknowledgement XML as a ``file`` upload (multipart)."""

    permission_classes = [tenant_may("filing", "transmit")]
    parser_classes = [boundary.MultiPartParser]
    max_bytes = 16 * 1024 * 1024

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "AcknowledgementUpload", {"file": serializers.FileField()}
            )
        },
        responses={201: OpenApiTypes.OBJECT},
    )
    @idempotent
    def post(self, request, package_id: int):
        package = _package_or_404(request, package_id)
        upload = request.FILES.get("file")
        if upload is None:
            raise ApplicationError(
                "Send the acknowledgement as the multipart field `file`.", code="file_required"
            )
        xml = upload.read(self.max_bytes + 1)
        if len(xml) > self.max_bytes:
            raise ApplicationError("The acknowledgement is too large.", code="too_large", status=413)
        ack = services.acknowledgement_receive(
            tenant=request_tenant(request), actor=actor_for_request(request), package_id=package.pk, xml=xml
        )
        return Response({"id": ack.pk, "summary": ack.summary}, status=status.HTTP_201_CREATED)


class RuleCatalogApi(APIView):
    """The machine-readable rule catalog (filings/rules.yaml)."""

    permission_classes = [tenant_may("filing", "view")]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        rules = catalog()
        return Response(
            {
                "version": rules.version,
                "sha256": rules.sha256,
                "rules": [vars(r) for r in rules.rules.values()],
            }
        )


class SarReferInput(serializers.Serializer):
    case_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=500
    )
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    detected_on = serializers.DateField(required=False, allow_null=True, default=None)


class SarReferApi(APIView):
    """Refer break cases to compliance: a SAR draft (201)."""

    permission_classes = [tenant_may("filing", "refer")]

    @extend_schema(request=SarReferInput, responses={201: FilingDetailOutput})
    @idempotent
    def post(self, request):
        data = SarReferInput(data=request.data)
        data.is_valid(raise_exception=True)
        filing = sar.sar_refer(
            tenant=request_tenant(request), actor=actor_for_request(request), **data.validated_data
        )
        return Response(FilingDetailOutput(filing).data, status=status.HTTP_201_CREATED)


# drf-spectacular documents a decimal as ^-?\d{0,22}(?:\.\d{0,2})?$, which "-" and "" match and the
# field refuses: the documented shape says what is accepted (at least one digit; 22 + 2 digits).
@extend_schema_field(
    {"type": "string", "format": "decimal", "pattern": r"^-?(?:\d{1,22}(?:\.\d{0,2})?|\.\d{1,2})$"}
)
class SarAmountField(serializers.DecimalField):
    def __init__(self, **kwargs):
        super().__init__(max_digits=24, decimal_places=2, **kwargs)


class SarEditInput(serializers.Serializer):
    narrative = serializers.CharField(required=False, allow_blank=True, max_length=sar.NARRATIVE_LIMIT + 1)
    activity_subtypes = serializers.ListField(
        child=serializers.CharField(max_length=8), required=False, max_length=99
    )
    # "Other" code → its description. Untrimmed, one character over the limit and blank allowed:
    # the service refuses a bad description by name (activity_text_invalid) rather than hide it.
    activity_other_texts = serializers.DictField(
        child=serializers.CharField(
            allow_blank=True, trim_whitespace=False, max_length=sar.OTHER_TEXT_LIMIT + 1
        ),
        required=False,
    )
    amount_involved = SarAmountField(required=False, allow_null=True)
    period_start = serializers.DateField(required=False)
    period_end = serializers.DateField(required=False)
    detected_on = serializers.DateField(required=False)
    prior_bsa_id = serializers.CharField(required=False, allow_blank=True, max_length=14)


class SarEditApi(APIView):
    """Edit a SAR draft (only the fields sent); every edit is in the filing's history."""

    permission_classes = [tenant_may("filing", "prepare")]

    @extend_schema(request=SarEditInput, responses=FilingDetailOutput)
    @idempotent
    def post(self, request, filing_id: int):
        data = SarEditInput(data=request.data)
        data.is_valid(raise_exception=True)
        filing = sar.sar_update(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            filing_id=_filing_or_404(request, filing_id).pk,
            **data.validated_data,
        )
        return Response(FilingDetailOutput(filing).data)


class FilingHistoryApi(APIView):
    """The filing's audited changes, oldest first."""

    permission_classes = [tenant_may("filing", "view")]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, filing_id: int):
        events = sar.filing_history(filing=_filing_or_404(request, filing_id))
        return Response(
            [
                {
                    "action": e.action,
                    "actor": e.actor_display,
                    "at": e.occurred_at,
                    "before": e.before,
                    "after": e.after,
                }
                for e in events
            ]
        )
