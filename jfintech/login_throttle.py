"""Login throttling for the admin (and any session login through ``authenticate()``).

``LOGIN_MAX_FAILURES`` failed logins for one username lock that username for
``LOGIN_LOCKOUT_SECONDS``: while locked, no password is checked (even the right one fails, with
the admin's usual "enter a correct username and password": the form does not tell an attacker the
account exists or is locked). The lock is audited (``auth.login_locked``, platform chain, with the
username and the number of failures); a successful login clears the count.

Counts live in Redis (shared by every gunicorn worker), keyed by a hash of the lower-cased
username. If Redis is unreachable the throttle is skipped with an error log: the password check
still applies, and the admin stays usable in an outage (docs/runbook.md).
"""

import hashlib

import redis
import structlog
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.dispatch import receiver

from jfintech.audit import Actor, record
from jfintech.common.redis_client import shared_client

log = structlog.get_logger(__name__)
ACTOR = Actor.for_system("login-throttle")


def _redis():
    return shared_client(settings.REDIS_URL, timeout_s=2)


def _key(username: str) -> str:
    return "jf:login-failures:" + hashlib.sha256(username.strip().lower().encode()).hexdigest()


def is_locked(username: str) -> bool:
    try:
        failures = _redis().get(_key(username))
    except redis.RedisError as exc:
        log.error("login_throttle_unavailable", error=str(exc))
        return False
    return failures is not None and int(failures) >= settings.LOGIN_MAX_FAILURES


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and is_locked(username):
            raise PermissionDenied  # authenticate() stops here and sends user_login_failed
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed, dispatch_uid="jfintech_login_failed")
def count_failure(sender, credentials, request=None, **kwargs):
    username = credentials.get("username")
    if not username:
        return
    key, limit, lockout = _key(username), settings.LOGIN_MAX_FAILURES, settings.LOGIN_LOCKOUT_SECONDS
    try:
        client = _redis()
        failures = client.incr(key)
        if failures == 1:
            client.expire(key, lockout)  # the window in which failures add up
        if failures == limit:
            client.expire(key, lockout)  # locked for the full period from now
    except redis.RedisError as exc:
        log.error("login_throttle_unavailable", error=str(exc))
        return
    log.warning("login_failed", failures=failures)
    if failures == limit:
        with transaction.atomic():
            record(
                tenant=None,
                actor=ACTOR,
                action="auth.login_locked",
                object_type="auth.user",
                object_id=username[:100],
                after={"username": username[:150], "failures": failures, "locked_seconds": lockout},
            )


@receiver(user_logged_in, dispatch_uid="jfintech_logged_in")
def clear_failures(sender, request, user, **kwargs):
    try:
        _redis().delete(_key(user.get_username()))
    except redis.RedisError as exc:
        log.error("login_throttle_unavailable", error=str(exc))
