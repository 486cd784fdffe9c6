from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jfintech.api import exceptions as api_errors
from jfintech.api.views import ApiRootApi
from jfintech.health import views as health

api_v1 = [
    path("", ApiRootApi.as_view(), name="root"),
    path("", include("jfintech.health.urls")),
    path("", include("jfintech.tenancy.urls")),
    path("", include("jfintech.audit.urls")),
    path("exceptions/", include("exceptions.urls")),
    path("ingestion/", include("reconciliation.ingestion.urls")),
    path("reconciliation/", include("reconciliation.matching.urls")),
    path("reconciliation/", include("reconciliation.runs.urls")),
    path("reports/", include("reporting.urls")),
    path("filings/", include("filings.urls")),
]

urlpatterns = [
    path("", TemplateView.as_view(template_name="landing.html"), name="landing"),
    path("livez", health.livez, name="livez"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),  # /metrics
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

# Under /api/ these answer the API's JSON error shape; elsewhere Django's pages (docs/api.md).
handler400 = api_errors.handler400
handler403 = api_errors.handler403
handler404 = api_errors.handler404
handler500 = api_errors.handler500
