"""API-key authentication for integrations: ``Authorization: Api-Key <prefix>.<secret>``.

It is the first authentication class, so DRF answers a caller without credentials 401 with
``WWW-Authenticate: Api-Key realm="api"`` (a caller who is authenticated but may not act gets 403).
Browser users of the admin and the browsable API authenticate by session
(:class:`SessionAuthentication`), which never issues a challenge of its own.

``request.auth`` is the :class:`~jfintech.tenancy.models.ApiKey` (it has ``.tenant`` and
``.role``); ``request.user`` is an :class:`ApiKeyPrincipal`, authenticated but not a database
user and never staff, so a key can never borrow the rights of the person who created it. Code
that needs "who did this" uses ``jfintech.api.permissions.actor_for_request(request)``, which
works for both users and keys.
"""

from __future__ import annotations

import hmac

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from jfintech.observability.logging import get_logger
from jfintech.tenancy import selectors, services
from jfintech.tenancy.models import ApiKey

log = get_logger(__name__)


class ApiKeyPrincipal:
    """``request.user`` of a request made with an API key."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, key: ApiKey):
        self.api_key = key

    def get_username(self) -> str:
        return f"api-key:{self.api_key.prefix}"

    def __str__(self) -> str:
        return self.get_username()

    def has_perm(self, *_args, **_kwargs) -> bool:
        return False

    def has_perms(self, *_args, **_kwargs) -> bool:
        return False

    def has_module_perms(self, *_args, **_kwargs) -> bool:
        return False


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: let the next authenticator (or none) decide
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid Api-Key header: expected 'Api-Key <key>'."))
        try:
            prefix, secret = header[1].decode().split(".", 1)
        except (UnicodeDecodeError, ValueError) as exc:
            raise exceptions.AuthenticationFailed(_("Invalid API key.")) from exc
        key = selectors.api_key_for_credentials(prefix)
        # Compare even when no key has the prefix, so timing does not reveal which prefixes exist.
        expected = key.secret_hash if key is not None else "0" * 64
        if not hmac.compare_digest(expected, services.hash_secret(secret)) or key is None:
            log.warning("api_key_rejected", reason="unknown_or_wrong_secret", prefix=prefix[:16])
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        if key.revoked_at is not None:
            log.warning("api_key_rejected", reason="revoked", prefix=prefix, tenant=key.tenant.slug)
            raise exceptions.AuthenticationFailed(_("This API key has been revoked."))
        services.api_key_touch(key=key)
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request):
        # RFC 9110 challenge: the scheme a client must use, and the protection space it applies to.
        return f'{self.keyword} realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication; a missing or wrong CSRF token gets its own code, ``csrf_failed``."""

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            # str(): an ErrorDetail would keep its own code, permission_denied.
            raise exceptions.PermissionDenied(str(exc.detail), code="csrf_failed") from exc
