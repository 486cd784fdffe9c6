"""The API's root, ``GET /api/v1/``: its sections and their collections, for a newcomer or a client
that discovers links instead of hard-coding them."""

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

API_NAMESPACE = "v1"


def _collections(patterns, prefix=""):
    """(route, URL name) of every pattern that names no object (no path parameter)."""
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _collections(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern) and p.name and not p.pattern.converters:
            yield prefix + str(p.pattern), p.name


class ApiRootApi(APIView):
    """The sections of the API (the first segment of each path) and their collections' URLs.

    Derived from the URL configuration, so a new endpoint appears here the day it is added. Open
    to anyone, like the schema: it lists addresses, not data.
    """

    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        _prefix, api = get_resolver().namespace_dict[API_NAMESPACE]
        sections: dict[str, dict[str, str]] = {}
        for route, name in _collections(api.url_patterns):
            if not route:
                continue  # this root
            url = request.build_absolute_uri(reverse(f"{API_NAMESPACE}:{name}"))
            sections.setdefault(route.split("/", 1)[0], {})[name] = url
        return Response(
            {
                "sections": dict(sorted(sections.items())),
                "schema": request.build_absolute_uri(reverse("schema")),
                "docs": request.build_absolute_uri(reverse("api-docs")),
            }
        )
