"""One error shape for every API failure: {"error": {"code", "message", "details", "request_id"}}."""

import structlog
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jfintech.common.errors import ApplicationError

log = structlog.get_logger(__name__)


def _request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


def error_response(code: str, message: str, details, http_status: int, headers=None) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details if details is not None else {},
            "request_id": _request_id(),
        }
    }
    return Response(body, status=http_status, headers=headers)


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        log.info("application_error", code=exc.code, message=exc.message)
        return error_response(exc.code, exc.message, exc.extra, exc.status)
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return error_response("invalid", "The request is not valid.", details, 400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django logs it with the trace id and answers 500
    if isinstance(exc, exceptions.ValidationError):
        code, message, details = "invalid", "The request is not valid.", response.data
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        message, details = str(detail or exc), {}
    headers = {k: v for k, v in response.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    return error_response(
        code, message, details, response.status_code or status.HTTP_400_BAD_REQUEST, headers
    )
