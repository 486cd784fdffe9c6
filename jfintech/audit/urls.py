from django.urls import path

from jfintech.audit import apis

urlpatterns = [
    path("audit-events/", apis.AuditEventListApi.as_view(), name="audit-event-list"),
    path("audit-events/<int:event_id>/", apis.AuditEventDetailApi.as_view(), name="audit-event-detail"),
]
