"""One error shape for every API failure: {"error": {"code", "message", "details", "request_id"}}.

DRF views answer it through :func:`exception_handler`. What Django answers itself under ``/api/``
(an unknown path or one whose converter does not match, a crash, a CSRF failure, a non-DRF view's
405, DEBUG's HTML pages) is rewritten into the same shape by :class:`ApiErrorMiddleware` and the
``handler400/403/404/500`` views of ``config/urls.py``. The codes are listed in docs/api.md.
"""

import sys
from http import HTTPStatus

import psycopg
import structlog
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.utils import OperationalError as DjangoOperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.middleware.common import CommonMiddleware
from django.urls import is_valid_path
from django.views import csrf, defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jfintech.common.errors import ApplicationError
from jfintech.observability.tracing import current_trace_id

log = structlog.get_logger(__name__)

API_PATH_PREFIX = "/api/"
# The code of an error no DRF view raised (same codes as DRF's exceptions where one exists).
_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    500: "server_error",
    503: "service_unavailable",
}
# Headers a client needs to act on an error; kept when an error is rewritten into the shape.
_KEPT_HEADERS = ("Retry-After", "WWW-Authenticate", "Allow")


def _request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


def _body(code: str, message: str, details) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details if details is not None else {},
            "request_id": _request_id(),
        }
    }


def error_response(code: str, message: str, details, http_status: int, headers=None) -> Response:
    return Response(_body(code, message, details), status=http_status, headers=headers)


def field_errors(detail, path: str | None = None) -> list[dict]:
    """DRF's nested validation detail as a flat list of ``{"field", "code", "message"}``: the field
    as a dotted path (``lines.2.amount``; None for the body as a whole), the problem's stable code
    (DRF's: ``required``, ``invalid``, ``max_length``, ``min_value``, ``invalid_choice``, …) and the
    message for a person. A program branches on field and code, never on the message."""
    if isinstance(detail, dict):
        return [
            error
            for key, value in detail.items()
            for error in field_errors(
                value,
                path if key in ("non_field_errors", "__all__") else f"{path}.{key}" if path else str(key),
            )
        ]
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [e for item in detail for e in field_errors(item, path)]
        return [
            e for i, item in enumerate(detail) for e in field_errors(item, f"{path}.{i}" if path else str(i))
        ]
    return [{"field": path, "code": getattr(detail, "code", None) or "invalid", "message": str(detail)}]


def _django_field_errors(exc: DjangoValidationError) -> list[dict]:
    by_field = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
    return [
        {
            "field": None if field in (None, "__all__") else field,
            "code": error.code or "invalid",
            "message": next(iter(error)),  # the message with its params applied
        }
        for field, errors in by_field.items()
        for error in errors
    ]


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        log.info("application_error", code=exc.code, message=exc.message)
        return error_response(exc.code, exc.message, exc.extra, exc.status, exc.headers)
    if isinstance(exc, DjangoValidationError):
        return error_response(
            "invalid", "The request is not valid.", {"errors": _django_field_errors(exc)}, 400
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django logs it with the trace id and answers 500 (handler500)
    if isinstance(exc, exceptions.ValidationError):
        code, message = "invalid", "The request is not valid."
        details = {"errors": field_errors(exc.detail)}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        message, details = str(detail or exc), {}
    headers = {k: v for k, v in response.items() if k in _KEPT_HEADERS}
    return error_response(
        code, message, details, response.status_code or status.HTTP_400_BAD_REQUEST, headers
    )


# --- Errors Django answers itself under /api/ -----------------------------------------------------


def is_api_request(request) -> bool:
    return request.path_info.startswith(API_PATH_PREFIX)


def api_error(
    request, http_status: int, *, code: str | None = None, message: str | None = None
) -> JsonResponse:
    """The shape for an error no DRF view answered; a 500 carries its trace id to quote to support."""
    details = {}
    if http_status == 404 and message is None:
        message = f"No API endpoint at {request.path}."
        if not request.path_info.endswith("/") and is_valid_path(request.path_info + "/"):
            message += f" Did you mean {request.path}/ (paths end with a slash)?"
    elif http_status >= 500:
        details = {"trace_id": current_trace_id() or None}
        message = message or "Internal server error: quote the request_id and trace_id to support."
    elif http_status == 405 and message is None:
        message = f'Method "{request.method}" not allowed.'
    if message is None:
        try:
            message = f"{HTTPStatus(http_status).phrase}."
        except ValueError:
            message = "Error."
    code = code or _STATUS_CODES.get(http_status, "error")
    # Compact separators, byte for byte like DRF's JSONRenderer.
    return JsonResponse(
        _body(code, message, details), status=http_status, json_dumps_params={"separators": (",", ":")}
    )


def _is_json(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().endswith("json")


class ApiErrorMiddleware:
    """Rewrites any non-JSON error under /api/ into the shape, DEBUG on or off.

    Sits inside django-structlog's middleware, so the request_id (and the request's span, for a
    500's trace id) are still bound when the response passes. Errors raised by the middleware
    outside it (before the request_id exists) are answered by the handlers below.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400 or not is_api_request(request) or _is_json(response):
            return response
        rewritten = api_error(request, response.status_code)
        for header in _KEPT_HEADERS:
            if header in response:
                rewritten[header] = response[header]
        return rewritten


class ApiCommonMiddleware(CommonMiddleware):
    """Django's CommonMiddleware, except that an unsafe request to an API path without its
    trailing slash is not redirected: a 301 makes HTTP clients repeat a POST as a GET, so "start a
    run" would come back 200 with the list of runs. It gets the 404 shape naming the right path."""

    def should_redirect_with_slash(self, request):
        if is_api_request(request) and request.method not in ("GET", "HEAD"):
            return False
        return super().should_redirect_with_slash(request)


def handler400(request, exception=None):
    if is_api_request(request):
        return api_error(request, 400)
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if is_api_request(request):
        return api_error(request, 403)
    return defaults.permission_denied(request, exception)


def handler404(request, exception=None):
    if is_api_request(request):
        return api_error(request, 404)
    return defaults.page_not_found(request, exception)


# Seconds a client waits before retrying when the database is unavailable or its pool exhausted.
DB_UNAVAILABLE_RETRY_AFTER = 5


def _database_unavailable(exc) -> bool:
    """The pool gave no connection within its timeout, the server refused one, or a statement ran
    past its timeout: overload or an outage, not a bug (psycopg's OperationalError family)."""
    while exc is not None:
        if isinstance(exc, DjangoOperationalError | psycopg.OperationalError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def handler500(request):
    # Called inside Django's except block: the exception is the one being handled.
    if _database_unavailable(sys.exc_info()[1]):
        headers = {"Retry-After": str(DB_UNAVAILABLE_RETRY_AFTER)}
        message = "The database is unavailable or overloaded; retry after Retry-After seconds."
        if is_api_request(request):
            response = api_error(request, 503, code="service_unavailable", message=message)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain")
        for name, value in headers.items():
            response[name] = value
        return response
    if is_api_request(request):
        return api_error(request, 500)
    return defaults.server_error(request)


def csrf_failure(request, reason=""):
    """settings.CSRF_FAILURE_VIEW: a stable code for API callers, Django's page for the admin."""
    if is_api_request(request):
        return api_error(request, 403, code="csrf_failed", message=f"CSRF failed: {reason}")
    return csrf.csrf_failure(request, reason)
