"""Idempotent POSTs: a retried request never acts twice.

Usage, on a DRF view's handler (APIView method or ViewSet action)::

    from jfintech.api.idempotency import idempotent

    class MembershipListApi(APIView):
        @extend_schema(request=MembershipInput, responses={201: MembershipOutput})
        @idempotent
        def post(self, request):
            ...call a service, return Response(..., status=201)

    @idempotent(tenant_scoped=False)      # a platform-level endpoint (no tenant)

A client sends ``Idempotency-Key: <up to 255 visible ASCII characters>``; without the header the
handler runs as usual. With it, the key is scoped to (tenant, principal, method, path, key):

* the first request runs the handler **in one transaction together with the stored response**
  (the response body is stored as rendered JSON, with a SHA-256 of the canonical request body),
  so a stored response exists exactly when the effect was committed;
* a repeat with the same body gets the stored status and body again (header
  ``Idempotent-Replayed: true``), without running the handler;
* a repeat with another body gets 422 ``idempotency_key_reused``;
* a concurrent repeat waits for the first to finish (it blocks on the unique index entry the
  first request inserted) and then gets the same stored response; only if that wait exceeds
  ``settings.IDEMPOTENCY_WAIT_SECONDS`` does it get 409 ``idempotency_in_progress``;
* failures are not stored: an exception (4xx ``ApplicationError``/validation error, or a 500)
  rolls back the effect and the key together, so a retry runs the handler again. A returned
  5xx response is also rolled back.

Keys are kept at least ``settings.IDEMPOTENCY_KEY_TTL_HOURS`` (>= 24); the beat task
``api.purge_idempotency_keys`` deletes older ones. Because the handler runs in one transaction,
``transaction.on_commit`` callbacks fire after the response is stored. Do not decorate handlers
whose response carries a secret (API-key creation): the response is stored in plain text.
"""

from __future__ import annotations

import functools
import hashlib
import json

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, connection, transaction
from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder as DrfJSONEncoder

from jfintech.api.metrics import IDEMPOTENCY_OUTCOMES
from jfintech.api.models import IdempotencyKey
from jfintech.api.permissions import request_api_key
from jfintech.api.tenancy import request_tenant
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger

log = get_logger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Headers a handler sets that belong to the response's meaning (Location of what was created).
_STORED_HEADERS = ("Location",)
_LOCK_NOT_AVAILABLE = "55P03"

SCHEMA_PARAMETER = OpenApiParameter(
    HEADER,
    # exactly what _validate_key accepts, so the schema tells clients (and schemathesis) the truth
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[!-~]+$"},
    OpenApiParameter.HEADER,
    required=False,
    description="Makes the POST safe to retry: a repeat with the same key and body gets the first "
    "response again; another body gets 422; a concurrent repeat waits for the first.",
)


def _canonical(value):
    if isinstance(value, QueryDict):
        return {k: [_canonical(v) for v in value.getlist(k)] for k in sorted(value.keys())}
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"file": value.name, "sha256": digest.hexdigest()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def request_body_hash(request) -> str:
    """SHA-256 of the parsed body in canonical JSON: whitespace and key order do not matter."""
    text = json.dumps(_canonical(request.data), sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(text.encode()).hexdigest()


def principal_of(request) -> str | None:
    key = request_api_key(request)
    if key is not None:
        return f"api_key:{key.pk}"
    user = request.user
    if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
        return f"user:{user.pk}"
    return None


def _validate_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not all(33 <= ord(c) <= 126 for c in key):
        raise ApplicationError(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} visible ASCII characters.", code="invalid_idempotency_key"
        )


def _claim(scope: dict, request_hash: str) -> IdempotencyKey | None:
    """Insert the scope's row, waiting behind a concurrent first request; None when we own it."""
    table = IdempotencyKey._meta.db_table
    wait_ms = int(settings.IDEMPOTENCY_WAIT_SECONDS * 1000)
    with connection.cursor() as cursor:
        # lock_timeout bounds the wait on a concurrent first request's uncommitted row; it is
        # restored before the handler runs, so the handler's own locks are not affected.
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)", [f"{wait_ms}ms"]
        )
        previous_timeout = cursor.fetchone()[0]
        try:
            with transaction.atomic():  # a savepoint: a timed-out wait must not poison the outer block
                cursor.execute(
                    f"""INSERT INTO {table} (tenant_id, principal, method, path, key, request_hash,
                                              response_status, response_body, response_headers, created_at)
                        VALUES (%s, %s, %s, %s, %s, %s, 0, '', '{{}}', now())
                        ON CONFLICT DO NOTHING RETURNING id""",
                    [
                        scope["tenant_id"],
                        scope["principal"],
                        scope["method"],
                        scope["path"],
                        scope["key"],
                        request_hash,
                    ],
                )
                inserted = cursor.fetchone()
        except OperationalError as exc:
            if getattr(getattr(exc, "__cause__", None), "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            IDEMPOTENCY_OUTCOMES.labels(outcome="wait_timeout").inc()
            log.warning("idempotency_wait_timeout", path=scope["path"], wait_ms=wait_ms)
            raise ApplicationError(
                "A request with this Idempotency-Key is still in progress; retry later.",
                code="idempotency_in_progress",
                status=409,
            ) from exc
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous_timeout])
    if inserted is not None:
        return None
    return IdempotencyKey.objects.get(**scope)


def _replay(stored: IdempotencyKey, request_hash: str) -> Response:
    if stored.request_hash != request_hash:
        IDEMPOTENCY_OUTCOMES.labels(outcome="body_mismatch").inc()
        raise ApplicationError(
            f"This {HEADER} was used with a different request body.",
            code="idempotency_key_reused",
            status=422,
        )
    if stored.response_status == 0:  # only visible inside the first request's own transaction
        raise ApplicationError(
            "A request with this Idempotency-Key is still in progress.",
            code="idempotency_in_progress",
            status=409,
        )
    IDEMPOTENCY_OUTCOMES.labels(outcome="replayed").inc()
    data = json.loads(stored.response_body) if stored.response_body else None
    headers = {**stored.response_headers, REPLAYED_HEADER: "true"}
    return Response(data, status=stored.response_status, headers=headers)


def _store(scope: dict, response) -> None:
    if not isinstance(response, Response):
        raise TypeError("an @idempotent handler must return a rest_framework Response")
    body = "" if response.data is None else json.dumps(response.data, cls=DrfJSONEncoder, ensure_ascii=False)
    headers = {h: response[h] for h in _STORED_HEADERS if response.has_header(h)}
    IdempotencyKey.objects.filter(**scope).update(
        response_status=response.status_code, response_body=body, response_headers=headers
    )


def idempotent(handler=None, *, tenant_scoped: bool = True):
    """Decorate a DRF POST handler; see the module docstring."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(view, request, *args, **kwargs):
            key = request.headers.get(HEADER)
            principal = principal_of(request)
            if key is None or principal is None:
                return fn(view, request, *args, **kwargs)
            _validate_key(key)
            scope = {
                "tenant_id": request_tenant(request).pk if tenant_scoped else None,
                "principal": principal,
                "method": request.method,
                "path": request.path,
                "key": key,
            }
            request_hash = request_body_hash(request)
            with transaction.atomic():
                stored = _claim(scope, request_hash)
                if stored is not None:
                    return _replay(stored, request_hash)
                response = fn(view, request, *args, **kwargs)
                if response.status_code >= 500:
                    transaction.set_rollback(True)
                    return response
                _store(scope, response)
            IDEMPOTENCY_OUTCOMES.labels(outcome="executed").inc()
            return response

        return extend_schema(parameters=[SCHEMA_PARAMETER])(wrapper)

    return decorate(handler) if handler is not None else decorate
