from django.urls import path

from jfintech.health import apis

urlpatterns = [
    path("health/pipeline-checks/", apis.PipelineCheckListApi.as_view(), name="pipeline-check-list"),
    path(
        "health/pipeline-checks/<int:check_id>/",
        apis.PipelineCheckDetailApi.as_view(),
        name="pipeline-check-detail",
    ),
]
