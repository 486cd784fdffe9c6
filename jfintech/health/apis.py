from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from jfintech.api.permissions import PlatformOnly
from jfintech.health import services
from jfintech.health.models import PipelineCheck


class PipelineCheckOutput(serializers.ModelSerializer):
    parts = serializers.SlugRelatedField(many=True, read_only=True, slug_field="queue")

    class Meta:
        model = PipelineCheck
        fields = ["id", "status", "created_at", "deadline", "completed_at", "trace_id", "error", "parts"]


class PipelineCheckListApi(APIView):
    """Start an end-to-end check of web → broker → every queue's workers → result backend."""

    permission_classes = [PlatformOnly]

    @extend_schema(request=None, responses={202: PipelineCheckOutput})
    def post(self, request):
        check = services.pipeline_check_start(user=request.user)
        return Response(PipelineCheckOutput(check).data, status=status.HTTP_202_ACCEPTED)


class PipelineCheckDetailApi(APIView):
    permission_classes = [PlatformOnly]

    @extend_schema(responses=PipelineCheckOutput)
    def get(self, request, check_id: int):
        check = get_object_or_404(PipelineCheck.objects.prefetch_related("parts"), pk=check_id)
        return Response(PipelineCheckOutput(check).data)
