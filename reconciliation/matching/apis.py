"""Matching depth over the API: suggestions accepted or rejected, manual match and unmatch, rule
versions approved or rejected (four-eyes), dry runs and impact simulations, similar records.

Thin views: input serializer -> service -> output serializer; the tenant is the request's; every
POST honours ``Idempotency-Key``.
"""

from __future__ import annotations

from datetime import date

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from jfintech.api.admission import admits
from jfintech.api.idempotency import idempotent
from jfintech.api.pagination import get_paginated_response
from jfintech.api.permissions import actor_for_request, tenant_may
from jfintech.api.tenancy import request_tenant
from jfintech.common.errors import ApplicationError
from reconciliation.matching import approval, manual, selectors, simulation, suggestions
from reconciliation.matching.models import SimulationKind, SimulationReport
from reconciliation.runs.models import Definition, Match, MatchStatus, RuleVersion, RuleVersionStatus, Run


def _not_found(what: str, pk) -> ApplicationError:
    return ApplicationError(f"No {what} {pk} in this tenant.", code="not_found", status=404)


def _definition_or_404(request, definition_id: int) -> Definition:
    definition = Definition.objects.filter(tenant=request_tenant(request), pk=definition_id).first()
    if definition is None:
        raise _not_found("definition", definition_id)
    return definition


class MatchOutput(serializers.ModelSerializer):
    records = serializers.SerializerMethodField()

    class Meta:
        model = Match
        fields = [
            "id", "definition_id", "run_id", "pass_no", "pass_name", "status", "run_outcome", "score",
            "differences", "created_at", "created_by", "decided_by", "decided_at", "decision_note", "records",
        ]  # fmt: skip

    def get_records(self, match) -> list[dict]:
        return selectors.match_records(match=match)


class NoteInput(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class ManualMatchInput(ReasonInput):
    record_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=2)


def _id_param(params, name: str) -> int | None:
    """A query parameter naming an object by id; anything else is no filter (as a bad status is)."""
    value = params.get(name, "")
    return int(value) if value.isdigit() else None


class MatchListApi(APIView):
    permission_classes = [tenant_may("match", "view")]

    @extend_schema(responses=MatchOutput(many=True))
    def get(self, request):
        params = request.query_params
        qs = selectors.match_list(
            tenant=request_tenant(request),
            definition_id=_id_param(params, "definition"),
            status=params.get("status") if params.get("status") in MatchStatus.values else None,
            run_id=_id_param(params, "run"),
            pass_name=params.get("pass"),
        )
        return get_paginated_response(queryset=qs, serializer_class=MatchOutput, request=request, view=self)


class MatchDetailApi(APIView):
    permission_classes = [tenant_may("match", "view")]

    @extend_schema(responses=MatchOutput)
    def get(self, request, match_id: int):
        match = selectors.match_get(tenant=request_tenant(request), match_id=match_id)
        if match is None:
            raise _not_found("match", match_id)
        return Response(MatchOutput(match).data)


class _MatchDecisionApi(APIView):
    """POST with a note or reason -> one decision service on the match (``service``, called with the
    tenant, the actor, the match id and the input's one ``field``)."""

    permission_classes = [tenant_may("match", "decide")]
    input_class: type[serializers.Serializer] = ReasonInput
    field = "reason"
    service = None  # a decision service of matching.suggestions / matching.manual (staticmethod)

    @idempotent
    def post(self, request, match_id: int):
        data = self.input_class(data=request.data)
        data.is_valid(raise_exception=True)
        match = self.service(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            match_id=match_id,
            **{self.field: data.validated_data[self.field]},
        )
        return Response(MatchOutput(match).data)


@extend_schema(request=NoteInput, responses=MatchOutput)
class SuggestionAcceptApi(_MatchDecisionApi):
    input_class, field, service = NoteInput, "note", staticmethod(suggestions.suggestion_accept)


@extend_schema(request=ReasonInput, responses=MatchOutput)
class SuggestionRejectApi(_MatchDecisionApi):
    service = staticmethod(suggestions.suggestion_reject)


@extend_schema(request=ReasonInput, responses=MatchOutput)
class MatchUnmatchApi(_MatchDecisionApi):
    service = staticmethod(manual.match_unmatch)


class ManualMatchApi(APIView):
    permission_classes = [tenant_may("match", "decide")]

    @extend_schema(request=ManualMatchInput, responses={201: MatchOutput})
    @idempotent
    def post(self, request, definition_id: int):
        definition = _definition_or_404(request, definition_id)
        data = ManualMatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        match = manual.match_create_manual(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            definition_id=definition.pk,
            record_ids=data.validated_data["record_ids"],
            reason=data.validated_data["reason"],
        )
        return Response(
            MatchOutput(match).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/reconciliation/matches/{match.pk}/"},
        )


class SimilarRecordsApi(APIView):
    permission_classes = [tenant_may("match", "view")]

    @extend_schema(responses=serializers.ListSerializer(child=serializers.DictField()))
    def get(self, request, definition_id: int):
        definition = _definition_or_404(request, definition_id)
        reference = (request.query_params.get("reference") or "").strip()
        if not reference:
            return Response([])
        limit = request.query_params.get("limit") or "20"
        limit = min(int(limit), 200) if limit.isdigit() else 20
        as_of = request.query_params.get("as_of")
        try:
            as_of = date.fromisoformat(as_of) if as_of else None
        except ValueError:
            raise ApplicationError("as_of must be a date (YYYY-MM-DD).", code="invalid") from None
        return Response(
            selectors.records_similar(
                tenant=request_tenant(request),
                definition=definition,
                reference=reference,
                as_of=as_of,
                limit=limit,
            )
        )


# --- rule approval ------------------------------------------------------------------------------------


class RuleVersionOutput(serializers.ModelSerializer):
    definition = serializers.CharField(source="definition.name")

    class Meta:
        model = RuleVersion
        fields = [
            "id", "definition_id", "definition", "version", "status", "rules", "comment", "created_by",
            "created_at", "decided_by", "decided_at", "decision_note",
        ]  # fmt: skip


class RuleVersionListApi(APIView):
    permission_classes = [tenant_may("rule_version", "view")]

    @extend_schema(responses=RuleVersionOutput(many=True))
    def get(self, request):
        params = request.query_params
        qs = selectors.rule_version_list(
            tenant=request_tenant(request),
            definition_id=_id_param(params, "definition"),
            status=params.get("status") if params.get("status") in RuleVersionStatus.values else None,
        )
        return get_paginated_response(
            queryset=qs, serializer_class=RuleVersionOutput, request=request, view=self
        )


class _RuleVersionDecisionApi(APIView):
    permission_classes = [tenant_may("rule_version", "approve")]
    approve: bool = True

    @extend_schema(request=NoteInput, responses=RuleVersionOutput)
    @idempotent
    def post(self, request, version_id: int):
        data = NoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = approval.rule_version_decide(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            user=request.user,
            version_id=version_id,
            approve=self.approve,
            note=data.validated_data["note"],
        )
        return Response(RuleVersionOutput(version).data)


class RuleVersionApproveApi(_RuleVersionDecisionApi):
    approve = True


class RuleVersionRejectApi(_RuleVersionDecisionApi):
    approve = False


# --- dry runs and impact simulations ------------------------------------------------------------------


class SimulationOutput(serializers.ModelSerializer):
    definition = serializers.CharField(source="definition.name")
    rule_version = serializers.IntegerField(source="rule_version.version")

    class Meta:
        model = SimulationReport
        fields = [
            "id", "kind", "definition_id", "definition", "rule_version", "base_run_id", "as_of",
            "date_from", "date_to", "status", "requested_by", "created_at", "completed_at", "duration_s",
            "summary", "diff", "error",
        ]  # fmt: skip


class DryRunInput(serializers.Serializer):
    as_of = serializers.DateField(required=False)
    rule_version_id = serializers.IntegerField(required=False)


class ImpactInput(serializers.Serializer):
    rule_version_id = serializers.IntegerField()


def _simulation_response(report: SimulationReport) -> Response:
    return Response(
        SimulationOutput(report).data,
        status=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/v1/reconciliation/simulations/{report.pk}/"},
    )


class DryRunApi(APIView):
    permission_classes = [tenant_may("simulation", "add")]

    @extend_schema(request=DryRunInput, responses={202: SimulationOutput})
    @idempotent
    @admits(simulation.SIMULATION_QUEUE)
    def post(self, request, definition_id: int):
        definition = _definition_or_404(request, definition_id)
        data = DryRunInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = simulation.simulation_request(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            kind=SimulationKind.DRY_RUN,
            definition_id=definition.pk,
            rule_version_id=data.validated_data.get("rule_version_id"),
            as_of=data.validated_data.get("as_of"),
        )
        return _simulation_response(report)


class ImpactApi(APIView):
    permission_classes = [tenant_may("simulation", "add")]

    @extend_schema(request=ImpactInput, responses={202: SimulationOutput})
    @idempotent
    @admits(simulation.SIMULATION_QUEUE)
    def post(self, request, run_id: int):
        run = Run.objects.filter(tenant=request_tenant(request), pk=run_id).first()
        if run is None:
            raise _not_found("run", run_id)
        data = ImpactInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = simulation.simulation_request(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            kind=SimulationKind.IMPACT,
            definition_id=run.definition_id,
            base_run_id=run.pk,
            rule_version_id=data.validated_data["rule_version_id"],
        )
        return _simulation_response(report)


class SimulationListApi(APIView):
    permission_classes = [tenant_may("simulation", "view")]

    @extend_schema(responses=SimulationOutput(many=True))
    def get(self, request):
        qs = selectors.simulation_list(
            tenant=request_tenant(request), definition_id=_id_param(request.query_params, "definition")
        )
        return get_paginated_response(
            queryset=qs, serializer_class=SimulationOutput, request=request, view=self
        )


class SimulationDetailApi(APIView):
    permission_classes = [tenant_may("simulation", "view")]

    @extend_schema(responses=SimulationOutput)
    def get(self, request, report_id: int):
        report = selectors.simulation_get(tenant=request_tenant(request), report_id=report_id)
        if report is None:
            raise _not_found("simulation", report_id)
        return Response(SimulationOutput(report).data)
