from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jfintech.health import views as health

api_v1 = [
    path("", include("jfintech.health.urls")),
    path("", include("jfintech.tenancy.urls")),
    path("", include("jfintech.audit.urls")),
    path("exceptions/", include("exceptions.urls")),
    path("ingestion/", include("reconciliation.ingestion.urls")),
    path("reconciliation/", include("reconciliation.matching.urls")),
    path("reconciliation/", include("reconciliation.runs.urls")),
]

urlpatterns = [
    path("livez", health.livez, name="livez"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),  # /metrics
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
