"""Runs over the API: start one (Idempotency-Key), follow its progress and counts, list, breaks.

Thin views: input serializer -> service -> output serializer; the tenant is the request's.
"""

from __future__ import annotations

import django_filters
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions import selectors as case_selectors
from jfintech.api.admission import admits
from jfintech.api.idempotency import idempotent
from jfintech.api.pagination import get_paginated_response
from jfintech.api.permissions import actor_for_request, tenant_may
from jfintech.api.tenancy import request_tenant
from jfintech.common.errors import ApplicationError
from reconciliation.runs import dispatch, selectors, services
from reconciliation.runs.models import Break, Definition, RuleVersionStatus, Run, RunStatus, RunTrigger


class DefinitionOutput(serializers.ModelSerializer):
    sources = serializers.SerializerMethodField()
    rule_version = serializers.SerializerMethodField()
    rules = serializers.SerializerMethodField()
    schedule = serializers.SerializerMethodField()

    class Meta:
        model = Definition
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "lookback_days",
            "lookahead_days",
            "deadline_seconds",
            "is_active",
            "sources",
            "rule_version",
            "rules",
            "schedule",
            "created_at",
            "updated_at",
        ]

    def _current(self, definition):
        # The version runs use: the latest approved one (a pending one waits for four-eyes).
        versions = sorted(
            (v for v in definition.rule_versions.all() if v.status == RuleVersionStatus.APPROVED),
            key=lambda v: v.version,
        )
        return versions[-1] if versions else None

    def get_sources(self, definition) -> dict:
        out: dict = {}
        for link in definition.sources.all():
            out.setdefault(link.side, []).append(link.source.name)
        return out

    def get_rule_version(self, definition) -> int | None:
        current = self._current(definition)
        return current.version if current else None

    def get_rules(self, definition) -> dict | None:
        current = self._current(definition)
        return current.rules if current else None

    def get_schedule(self, definition) -> dict | None:
        return services.schedule_snapshot(definition)


class RunOutput(serializers.ModelSerializer):
    definition = serializers.CharField(source="definition.name")
    definition_id = serializers.IntegerField()
    rule_version = serializers.IntegerField(source="rule_version.version")
    progress = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "definition",
            "definition_id",
            "kind",
            "rule_version",
            "as_of",
            "date_from",
            "date_to",
            "status",
            "trigger",
            "requested_by",
            "attempts",
            "redrives",
            "created_at",
            "started_at",
            "fetched_at",
            "completed_at",
            "heartbeat_at",
            "deadline",
            "trace_id",
            "error",
            "error_code",
            "progress",
            "counts",
            "breaks_by_type",
            "timings",
            "conservation",
            "cases",
        ]

    def get_progress(self, run) -> dict:
        total, done = run.progress_total, run.progress_done
        return {"done": done, "total": total, "percent": round(100 * done / total, 1) if total else None}

    def get_counts(self, run) -> dict:
        return {
            "records_in_scope": run.records_in_scope,
            "matched": run.matched,
            "suggested": run.suggested,
            "in_breaks": run.in_breaks,
            "excluded": run.excluded,
            "matches": run.matches,
        }


class BreakOutput(serializers.ModelSerializer):
    # The case the break is worked on (one per fingerprint, across runs): its id and API address.
    case_id = serializers.IntegerField(read_only=True, allow_null=True, default=None)
    case_url = serializers.SerializerMethodField()

    class Meta:
        model = Break
        fields = [
            "id",
            "case_id",
            "case_url",
            "break_type",
            "fingerprint",
            "record_ids",
            "currency",
            "amount_at_stake",
            "reference",
            "account",
            "instrument",
            "differences",
            "snapshot",
            "rule",
        ]

    def get_case_url(self, brk) -> str | None:
        case_id = getattr(brk, "case_id", None)
        if case_id is None:
            return None
        path = reverse("v1:case-detail", kwargs={"case_id": case_id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class RunStartInput(serializers.Serializer):
    definition = serializers.CharField(help_text="The definition's name (or id).")
    as_of = serializers.DateField(required=False, help_text="Default: today in the tenant's time zone.")
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)


class RunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    definition = django_filters.CharFilter(field_name="definition__name")
    as_of = django_filters.DateFilter()

    class Meta:
        model = Run
        fields = ["status", "definition", "as_of"]


def _definition_or_404(request, ref: str) -> Definition:
    tenant = request_tenant(request)
    found = selectors.definition_get(tenant=tenant, name=ref)
    if found is None and ref.isdigit():
        found = selectors.definition_get(tenant=tenant, definition_id=int(ref))
    if found is None:
        raise ApplicationError(
            f"No definition {ref!r} in this tenant.", code="definition_not_found", status=404
        )
    return found


def _run_or_404(request, run_id: int) -> Run:
    run = selectors.run_get(tenant=request_tenant(request), run_id=run_id)
    if run is None:
        raise ApplicationError(f"No run {run_id} in this tenant.", code="run_not_found", status=404)
    return run


class DefinitionListApi(APIView):
    permission_classes = [tenant_may("definition", "view")]

    @extend_schema(responses=DefinitionOutput(many=True))
    def get(self, request):
        return get_paginated_response(
            queryset=selectors.definitions_for_tenant(tenant=request_tenant(request)),
            serializer_class=DefinitionOutput,
            request=request,
            view=self,
        )


class DefinitionDetailApi(APIView):
    permission_classes = [tenant_may("definition", "view")]

    @extend_schema(responses=DefinitionOutput)
    def get(self, request, definition_id: int):
        return Response(DefinitionOutput(_definition_or_404(request, str(definition_id))).data)


class RunListApi(APIView):
    permission_classes = [tenant_may("run", GET="view", POST="start")]

    @extend_schema(responses=RunOutput(many=True))
    def get(self, request):
        filtered = RunFilter(request.GET, selectors.runs_for_tenant(tenant=request_tenant(request)))
        if not filtered.is_valid():
            raise ApplicationError("Invalid filter.", code="invalid", extra=filtered.errors)
        return get_paginated_response(
            queryset=filtered.qs, serializer_class=RunOutput, request=request, view=self
        )

    @extend_schema(request=RunStartInput, responses={202: RunOutput, 409: None})
    @idempotent
    @admits(dispatch.FETCH_QUEUE, dispatch.COMPUTE_QUEUE)
    def post(self, request):
        """Start a run; it is reconciled by the workers (follow it at the run's URL). 409 while
        another run of the definition is in flight; 503 ``queue_full`` while the workers' queues are
        at their depth limit."""
        data = RunStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        definition = _definition_or_404(request, values.pop("definition"))
        run = services.run_start(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            definition=definition,
            trigger=RunTrigger.API,
            **values,
        )
        return Response(
            RunOutput(run).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/reconciliation/runs/{run.pk}/"},
        )


class RunDetailApi(APIView):
    permission_classes = [tenant_may("run", "view")]

    @extend_schema(responses=RunOutput)
    def get(self, request, run_id: int):
        return Response(RunOutput(_run_or_404(request, run_id)).data)


class RunBreakListApi(APIView):
    permission_classes = [tenant_may("break", "view")]

    @extend_schema(responses=BreakOutput(many=True))
    def get(self, request, run_id: int):
        run = _run_or_404(request, run_id)
        return get_paginated_response(
            queryset=selectors.breaks_for_run(tenant=run.tenant, run=run).annotate(
                case_id=case_selectors.case_id_of_break()
            ),
            serializer_class=BreakOutput,
            request=request,
            view=self,
        )
