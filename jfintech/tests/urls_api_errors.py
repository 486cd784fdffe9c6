"""URL configuration for test_api_errors: the project's, plus views that fail in ways no real
endpoint does on purpose (a crash, a plain Django view with its own CSRF check and 405)."""

from django.db.utils import OperationalError
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_POST
from psycopg_pool import PoolTimeout
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401 (Django reads them here)


def crash(request):
    raise RuntimeError("a bug in a view")


class CrashApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("a bug in an API view")


def pool_exhausted(request):
    """What Django raises when the psycopg pool gives no connection within its timeout."""
    try:
        raise PoolTimeout("couldn't get a connection after 10.00 sec")
    except PoolTimeout as exc:
        raise OperationalError(str(exc)) from exc


class PoolExhaustedApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        pool_exhausted(request)


@require_POST
def plain_post(request):
    return HttpResponse("done")


urlpatterns = [
    path("api/v1/test-crash/", crash),
    path("api/v1/test-crash-api/", CrashApi.as_view()),
    path("api/v1/test-plain/", plain_post),
    path("test-crash/", crash),
    path("api/v1/test-pool-exhausted/", pool_exhausted),
    path("api/v1/test-pool-exhausted-api/", PoolExhaustedApi.as_view()),
    path("test-pool-exhausted/", pool_exhausted),
    path("", include("config.urls")),
]
