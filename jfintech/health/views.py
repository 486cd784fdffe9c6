"""Liveness and readiness probes.

``/livez`` says only that the process answers (a restart would not fix a database outage, so
liveness must not depend on it). ``/readyz`` checks PostgreSQL and Redis with short timeouts so a
pod that cannot reach them is taken out of the load balancer, and says which one failed.
"""

import time

import redis
from django.conf import settings
from django.db import connection, transaction
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from jfintech.observability.logging import get_logger

log = get_logger(__name__)


@never_cache
@require_GET
def livez(request):
    return JsonResponse({"status": "ok"})


def _check_database(timeout_s: float) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(int(timeout_s * 1000))])
        cursor.execute("SELECT 1")


def _check_redis(timeout_s: float) -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        client.ping()
    finally:
        client.close()


CHECKS = {"postgres": _check_database, "redis": _check_redis}


@never_cache
@require_GET
def readyz(request):
    timeout_s = settings.HEALTH_CHECK_TIMEOUT_S
    results, ok = {}, True
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check(timeout_s)
            results[name] = {"status": "ok"}
        except Exception as exc:  # any failure means not ready; say which and why
            ok = False
            results[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
            log.warning("readiness_check_failed", check=name, **{"error.type": type(exc).__name__})
        results[name]["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    return JsonResponse({"status": "ok" if ok else "error", "checks": results},
                        status=200 if ok else 503)  # fmt: skip
