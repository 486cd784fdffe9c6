from django.urls import path

from reconciliation.runs import apis

urlpatterns = [
    path("definitions/", apis.DefinitionListApi.as_view(), name="recon-definition-list"),
    path(
        "definitions/<int:definition_id>/", apis.DefinitionDetailApi.as_view(), name="recon-definition-detail"
    ),
    path("runs/", apis.RunListApi.as_view(), name="recon-run-list"),
    path("runs/<int:run_id>/", apis.RunDetailApi.as_view(), name="recon-run-detail"),
    path("runs/<int:run_id>/breaks/", apis.RunBreakListApi.as_view(), name="recon-run-break-list"),
]
