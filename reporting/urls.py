from django.urls import path

from reporting import apis

urlpatterns = [
    path("runs/<int:run_id>/", apis.RunReportApi.as_view(), name="report-run"),
    path("aging/", apis.AgingReportApi.as_view(), name="report-aging"),
    path("trends/", apis.TrendsReportApi.as_view(), name="report-trends"),
    path("inventory/", apis.InventoryReportApi.as_view(), name="report-inventory"),
    path("statement/", apis.StatementReportApi.as_view(), name="report-statement"),
    path("breaks/export/", apis.BreakExportApi.as_view(), name="report-break-export"),
    path("exports/", apis.ExportJobListApi.as_view(), name="report-export-list"),
    path("exports/<int:job_id>/", apis.ExportJobDetailApi.as_view(), name="report-export-detail"),
    path("subscriptions/", apis.SubscriptionListApi.as_view(), name="report-subscription-list"),
    path(
        "subscriptions/<int:subscription_id>/",
        apis.SubscriptionDetailApi.as_view(),
        name="report-subscription-detail",
    ),
    path("packs/", apis.AuditorPackApi.as_view(), name="report-pack-list"),
    path(
        "artifacts/<int:artifact_id>/download/",
        apis.ArtifactDownloadApi.as_view(),
        name="report-artifact-download",
    ),
]
