"""URL configuration for test_api_errors: the project's, plus views that fail in ways no real
endpoint does on purpose (a crash, a plain Django view with its own CSRF check and 405)."""

from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_POST
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401 (Django reads them here)


def crash(request):
    raise RuntimeError("a bug in a view")


class CrashApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("a bug in an API view")


@require_POST
def plain_post(request):
    return HttpResponse("done")


urlpatterns = [
    path("api/v1/test-crash/", crash),
    path("api/v1/test-crash-api/", CrashApi.as_view()),
    path("api/v1/test-plain/", plain_post),
    path("test-crash/", crash),
    path("", include("config.urls")),
]
