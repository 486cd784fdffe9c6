"""The desk over the API: list (the admin's filters), retrieve, assign, transition, comment, four-eyes.

Thin views: input serializer → service → output serializer. The tenant is the request's
(``request_tenant``); POSTs honour ``Idempotency-Key``; errors have the standard shape.
"""

from django.contrib.auth import get_user_model
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions import selectors, services
from exceptions.filters import CaseFilter
from exceptions.models import ApprovalKind, ApprovalRequest, Case, CaseComment, CaseStatus, Priority
from jfintech.api.idempotency import idempotent
from jfintech.api.permissions import actor_for_request, request_api_key, tenant_may
from jfintech.api.tenancy import request_tenant
from jfintech.common.errors import ApplicationError


def _person(request):
    """The person behind the request (None for an API key: a key is never a maker or checker)."""
    return None if request_api_key(request) is not None else request.user


def _case_or_404(request, case_id: int) -> Case:
    case = selectors.case_get(tenant=request_tenant(request), case_id=case_id)
    if case is None:
        raise ApplicationError(f"No case {case_id} in this tenant.", code="case_not_found", status=404)
    return case


class CaseListOutput(serializers.ModelSerializer):
    # null when unassigned / no root cause (the schema says so: allow_null)
    assignee = serializers.CharField(source="assignee.username", default=None, allow_null=True)
    root_cause = serializers.CharField(source="root_cause.code", default=None, allow_null=True)

    class Meta:
        model = Case
        fields = [
            "id",
            "break_type",
            "status",
            "priority",
            "amount_at_stake",
            "currency",
            "reference",
            "account",
            "instrument",
            "definition_id",
            "definition_name",
            "assignee",
            "root_cause",
            "sla_due_at",
            "sla_breached_at",
            "first_seen_at",
            "last_seen_at",
            "run_count",
            "last_run_id",
        ]


class CommentOutput(serializers.ModelSerializer):
    class Meta:
        model = CaseComment
        fields = ["id", "author_display", "body", "created_at"]


class ApprovalOutput(serializers.ModelSerializer):
    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "case_id",
            "kind",
            "status",
            "amount",
            "currency",
            "threshold",
            "note",
            "requested_by_display",
            "requested_at",
            "decided_by_display",
            "decided_at",
            "decision_note",
        ]


class CaseDetailOutput(CaseListOutput):
    comments = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()
    pending_approval = serializers.SerializerMethodField()

    class Meta(CaseListOutput.Meta):
        fields = [
            *CaseListOutput.Meta.fields,
            "fingerprint",
            "record_ids",
            "snapshot",
            "differences",
            "rule",
            "first_run_id",
            "trace_id",
            "resolution_reason",
            "resolution_note",
            "resolved_at",
            "resolved_by",
            "reopen_count",
            "opened_at",
            "comments",
            "history",
            "pending_approval",
        ]

    def get_comments(self, case) -> list[dict]:
        return CommentOutput(selectors.case_comments(case=case), many=True).data

    def get_history(self, case) -> list[dict]:
        return [
            {
                "at": e.occurred_at,
                "actor": e.actor_display,
                "action": e.action,
                "before": e.before,
                "after": e.after,
            }
            for e in selectors.case_history(case=case)
        ]

    def get_pending_approval(self, case) -> dict | None:
        approval = selectors.case_pending_approval(case=case)
        return ApprovalOutput(approval).data if approval else None


class CaseListApi(ListAPIView):
    """Break cases of the request's tenant, with the desk's filters (status, type, age, assignee, …)."""

    permission_classes = [tenant_may("case", "view")]
    serializer_class = CaseListOutput
    filter_backends = [DjangoFilterBackend]
    filterset_class = CaseFilter
    queryset = Case.objects.none()  # the model, for the schema generator (it has no tenant)

    def get_queryset(self):
        return selectors.case_list(tenant=request_tenant(self.request))


class CaseDetailApi(APIView):
    permission_classes = [tenant_may("case", "view")]

    @extend_schema(responses=CaseDetailOutput)
    def get(self, request, case_id: int):
        return Response(CaseDetailOutput(_case_or_404(request, case_id)).data)


class AssignInput(serializers.Serializer):
    assignee = serializers.RegexField(
        r"^([0-9]{1,18}|me)$",
        allow_null=True,
        help_text='a user id, "me", or null to unassign (back to open)',
    )


class CaseAssignApi(APIView):
    permission_classes = [tenant_may("case", "work")]

    @extend_schema(request=AssignInput, responses=CaseDetailOutput)
    @idempotent
    def post(self, request, case_id: int):
        data = AssignInput(data=request.data)
        data.is_valid(raise_exception=True)
        value, tenant = data.validated_data["assignee"], request_tenant(request)
        if value is None:
            assignee = None
        elif value == "me":
            assignee = _person(request)
            if assignee is None:
                raise ApplicationError(
                    'An API key cannot be assigned ("me" needs a person).', code="not_a_person", status=403
                )
        else:
            assignee = get_user_model().objects.filter(pk=value).first() if value.isdigit() else None
            if assignee is None:
                raise ApplicationError(f"No user {value}.", code="user_not_found", status=404)
        case = services.case_assign(
            tenant=tenant, actor=actor_for_request(request), case_id=case_id, assignee=assignee
        )
        return Response(CaseDetailOutput(case).data)


class TransitionInput(serializers.Serializer):
    to_status = serializers.ChoiceField(choices=CaseStatus.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    note = serializers.CharField(required=False, allow_blank=True, default="")


class CaseTransitionApi(APIView):
    """Move a case (assigned, investigating, resolved with a reason, open = unassign or reopen)."""

    permission_classes = [tenant_may("case", "work")]

    @extend_schema(request=TransitionInput, responses=CaseDetailOutput)
    @idempotent
    def post(self, request, case_id: int):
        data = TransitionInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = services.case_transition(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            user=_person(request),
            case_id=case_id,
            **data.validated_data,
        )
        return Response(CaseDetailOutput(case).data)


class PriorityInput(serializers.Serializer):
    priority = serializers.ChoiceField(choices=Priority.choices)


class CasePriorityApi(APIView):
    permission_classes = [tenant_may("case", "work")]

    @extend_schema(request=PriorityInput, responses=CaseDetailOutput)
    @idempotent
    def post(self, request, case_id: int):
        data = PriorityInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = services.case_set_priority(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            case_id=case_id,
            priority=data.validated_data["priority"],
        )
        return Response(CaseDetailOutput(case).data)


class CommentInput(serializers.Serializer):
    body = serializers.CharField(max_length=10000)


class CaseCommentApi(APIView):
    permission_classes = [tenant_may("case", "work")]

    @extend_schema(request=CommentInput, responses={201: CommentOutput})
    @idempotent
    def post(self, request, case_id: int):
        data = CommentInput(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.case_comment_add(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            user=_person(request),
            case_id=case_id,
            body=data.validated_data["body"],
        )
        return Response(CommentOutput(comment).data, status=status.HTTP_201_CREATED)


class ResolutionRequestInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ApprovalKind.choices, default=ApprovalKind.WRITE_OFF)
    note = serializers.CharField(max_length=10000)


class CaseResolutionRequestApi(APIView):
    """Request a write-off or force-match: resolved at once at or below the threshold, else pending."""

    permission_classes = [tenant_may("case", "work")]

    @extend_schema(
        request=ResolutionRequestInput,
        responses={
            201: inline_serializer(
                "ResolutionRequestOutput",
                {"case": CaseDetailOutput(), "approval": ApprovalOutput(allow_null=True)},
            )
        },
    )
    @idempotent
    def post(self, request, case_id: int):
        data = ResolutionRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.case_request_resolution(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            user=_person(request),
            case_id=case_id,
            **data.validated_data,
        )
        approval = result["approval"]
        body = {
            "case": CaseDetailOutput(result["case"]).data,
            "approval": ApprovalOutput(approval).data if approval else None,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class DecisionInput(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class _ApprovalDecisionApi(APIView):
    permission_classes = [tenant_may("case", "approve")]  # and the service insists on maker ≠ checker
    approve: bool

    @extend_schema(request=DecisionInput, responses=ApprovalOutput)
    @idempotent
    def post(self, request, approval_id: int):
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        approval = services.approval_decide(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            user=_person(request),
            approval_id=approval_id,
            approve=self.approve,
            note=data.validated_data["note"],
        )
        return Response(ApprovalOutput(approval).data)


class ApprovalApproveApi(_ApprovalDecisionApi):
    approve = True


class ApprovalRejectApi(_ApprovalDecisionApi):
    approve = False


class ApprovalListApi(ListAPIView):
    """Approval requests of the tenant (``?status=pending`` for the approver's queue)."""

    permission_classes = [tenant_may("approval", "view")]
    serializer_class = ApprovalOutput
    queryset = ApprovalRequest.objects.none()  # the model, for the schema generator (it has no tenant)

    def get_queryset(self):
        qs = selectors.approval_list(tenant=request_tenant(self.request))
        wanted = self.request.query_params.get("status")
        return qs.filter(status=wanted) if wanted else qs
