"""OpenAPI (drf-spectacular) extensions: how the schema describes this project's authentication.

Imported from ``JfintechConfig.ready()`` so they are registered before any schema is generated.
"""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object

from jfintech.api.authentication import ApiKeyAuthentication, SessionAuthentication


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
