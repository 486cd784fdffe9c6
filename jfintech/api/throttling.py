"""Per-key rate limit: ``API_RATE_LIMIT_PER_MINUTE`` requests per API key per minute, beyond which
the API answers 429 ``throttled`` with ``Retry-After`` (seconds to the next minute).

A fixed one-minute window counted in Redis, so every web process shares one count per key. People
(session logins) are not limited: the admin and browser are not where load comes from. With Redis
unreachable the limit is skipped with an error log: the API stays up, loudly.
"""

import time

import redis
import structlog
from django.conf import settings
from rest_framework.throttling import BaseThrottle

from jfintech.api.permissions import request_api_key
from jfintech.common.redis_client import shared_client

log = structlog.get_logger(__name__)


def _redis():
    return shared_client(settings.REDIS_URL, timeout_s=1)


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        key, limit = request_api_key(request), settings.API_RATE_LIMIT_PER_MINUTE
        if key is None or not limit:
            return True
        now = time.time()
        name = f"jf:rate:{key.pk}:{int(now // 60)}"
        try:
            pipe = _redis().pipeline()
            pipe.incr(name)
            pipe.expire(name, 120)
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            log.error("rate_limit_unavailable", error=str(exc))
            return True
        self._wait = 60 - now % 60
        if count > limit:
            log.warning("rate_limited", api_key=key.prefix, count=count, limit=limit)
            return False
        return True

    def wait(self):
        return self._wait
