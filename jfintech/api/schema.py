"""OpenAPI (drf-spectacular): how the schema describes authentication, pages and errors.

Imported from ``JfintechConfig.ready()`` so they are registered before any schema is generated.
"""

from django.core.validators import RegexValidator
from drf_spectacular import openapi
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from jfintech.api.authentication import ApiKeyAuthentication, SessionAuthentication
from jfintech.api.pagination import CreatedCursorPagination
from jfintech.common.inputs import BIGINT_MAX, BIGINT_MIN


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """``Authorization: Api-Key <prefix>.<secret>`` (Swagger UI's "Authorize" button offers it)."""

    target_class = ApiKeyAuthentication
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=self.target.keyword
        )


class ProjectSessionScheme(SessionScheme):
    """Our SessionAuthentication subclass is the same cookie session as DRF's."""

    target_class = SessionAuthentication


# --- The schema tells the truth: pages, error responses ------------------------------------------


class ErrorBody(serializers.Serializer):
    """``{"error": {...}}``: every 4xx/5xx under /api/ (jfintech/api/exceptions.py, docs/api.md)."""

    error = inline_serializer(
        "ErrorDetail",
        {
            "code": serializers.CharField(help_text="stable, listed in docs/api.md"),
            "message": serializers.CharField(),
            "details": serializers.JSONField(),
            "request_id": serializers.CharField(allow_null=True),
        },
    )


# Every operation can answer these (the input boundary, authentication, the permission table, an
# unknown tenant or object); writes can also conflict (an Idempotency-Key reused, a state change
# that is no longer allowed); the admission control answers 429/503 (docs/reliability.md).
ERRORS_ANY = {
    "400": "Invalid input (details name the fields).",
    "401": "No or bad credentials.",
    "403": "Your role may not do this.",
    "404": "No such object (or tenant) for you.",
    "429": "Rate limited: retry after Retry-After seconds.",
    "503": "Overloaded or a dependency is down: retry after Retry-After seconds.",
}
ERRORS_WRITE = {"409": "Conflicts with the current state or an earlier request with this Idempotency-Key."}


class AutoSchema(openapi.AutoSchema):
    def _get_paginator(self):
        # Plain APIViews paginate through jfintech.api.pagination.get_paginated_response, always
        # with this class; drf-spectacular only applies it to a list of serializers (a bare list
        # of dicts, like similar-records, stays an array).
        paginator = super()._get_paginator()
        if paginator is None and not hasattr(self.view, "pagination_class"):
            return CreatedCursorPagination()
        return paginator

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        # Say what the input boundary and DRF enforce, so a schema-valid request is never refused
        # for its shape: a non-blank string has a non-space character (DRF trims), an integer fits
        # in 64 bits (jfintech.common.inputs).
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if schema.get("type") == "string" and isinstance(field, serializers.CharField):
            regexes = [v.regex.pattern for v in field.validators if isinstance(v, RegexValidator)]
            if regexes:
                schema["pattern"] = regexes[0]
            elif not field.allow_blank and "pattern" not in schema and "format" not in schema:
                schema |= {"minLength": max(schema.get("minLength", 0), 1), "pattern": r"\S"}
        elif schema.get("type") == "integer":
            schema.setdefault("minimum", BIGINT_MIN)
            schema.setdefault("maximum", BIGINT_MAX)
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        errors = ERRORS_ANY | (ERRORS_WRITE if self.method in ("POST", "PUT", "PATCH", "DELETE") else {})
        ref = self.resolve_serializer(ErrorBody, direction).ref
        for code, description in errors.items():
            responses.setdefault(
                code, {"description": description, "content": {"application/json": {"schema": ref}}}
            )
        return responses
