from django.urls import path

from reconciliation.ingestion import apis

urlpatterns = [
    path("sources/", apis.SourceListApi.as_view(), name="ingestion-source-list"),
    path("sources/<int:source_id>/", apis.SourceDetailApi.as_view(), name="ingestion-source-detail"),
    path("sources/<int:source_id>/batches/", apis.BatchUploadApi.as_view(), name="ingestion-batch-upload"),
    path("sources/<int:source_id>/records/", apis.RecordsPushApi.as_view(), name="ingestion-records-push"),
    path("batches/", apis.BatchListApi.as_view(), name="ingestion-batch-list"),
    path("batches/<int:batch_id>/", apis.BatchDetailApi.as_view(), name="ingestion-batch-detail"),
    path(
        "batches/<int:batch_id>/rejections/", apis.RejectionListApi.as_view(), name="ingestion-rejection-list"
    ),
    path("batches/<int:batch_id>/reverse/", apis.BatchReverseApi.as_view(), name="ingestion-batch-reverse"),
]
