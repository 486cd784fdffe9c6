"""The one input boundary: what no request may carry into the system, refused before any view runs.

PostgreSQL cannot store a NUL byte in text or jsonb (``COPY``/``INSERT`` fail: a 500), and an integer
beyond bigint fails every comparison with an id column. So, at the edge:

* :class:`InputBoundaryMiddleware` refuses a NUL byte in the path or in any query parameter's name or
  value (every request: the admin's search box too), and a path integer beyond bigint (no object has
  that id: 404). The API answers 400 ``invalid`` in its error shape; elsewhere Django's 400 page.
* The parsers (JSON, ``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``; multipart for the upload)
  refuse, anywhere in a body, a NUL byte in a value or a field *name*, an integer beyond bigint
  and a non-finite number (``NaN``/``Infinity``).

Serializer fields keep their own bounds (DRF's CharField already refuses NUL); this is the floor
under them, so an endpoint that reads ``request.data`` or ``query_params`` raw is covered too.
"""

import json

from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from jfintech.api.exceptions import api_error, is_api_request
from jfintech.common.inputs import BIGINT_MAX, BIGINT_MIN, HostileInput, check


def _no_constants(name):
    raise ValueError(f"{name} is not valid JSON")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser behind the boundary. ``parse_float=Decimal`` for money (ingestion's push)."""

    parse_float = float

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = json.loads(stream.read(), parse_float=self.parse_float, parse_constant=_no_constants)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        try:
            check(data)
        except HostileInput as exc:
            raise ParseError(str(exc)) from exc
        return data


def _check_querydict(data, where: str) -> None:
    for key, values in data.lists():
        check(key, where)
        for value in values:
            check(value, f"{where}.{key}")


class MultiPartParser(parsers.MultiPartParser):
    """Form fields are checked; an uploaded file's bytes are the ingestion parsers' to judge."""

    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        try:
            _check_querydict(result.data, "body")
            for name, upload in result.files.items():
                check(name, "body")
                check(upload.name, f"body.{name}.filename")
        except HostileInput as exc:
            raise ParseError(str(exc)) from exc
        return result


class InputBoundaryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def _refuse(self, request, message: str):
        if is_api_request(request):
            return api_error(request, 400, code="invalid", message=message)
        raise SuspiciousOperation(message)  # Django's 400 page, logged to django.security

    def __call__(self, request):
        try:
            check(request.path_info, "path")
            _check_querydict(request.GET, "query")
        except HostileInput as exc:
            return self._refuse(request, str(exc))
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        for name, value in view_kwargs.items():
            if isinstance(value, int) and not BIGINT_MIN <= value <= BIGINT_MAX:
                if is_api_request(request):
                    return api_error(request, 404, message=f"No object has {name} {value}.")
                raise Http404(f"No object has {name} {value}.")
        return None
