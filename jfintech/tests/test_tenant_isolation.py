"""A user or API key of tenant A gets 404 for tenant B's objects on every endpoint that exists.

The endpoints are enumerated from the URL configuration, so a new endpoint is covered the day it
is added: one with a path parameter must be registered in jfintech.testing.isolation (how to
make tenant B's object) or ``test_every_endpoint_is_registered`` fails naming it (docs/tenancy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from rest_framework.test import APIClient

from jfintech.audit import Actor
from jfintech.tenancy import services
from jfintech.tenancy.models import Role
from jfintech.tenancy.permissions import PEOPLE_ONLY
from jfintech.testing import isolation
from jfintech.tests.factories import MembershipFactory, TenantFactory, member

pytestmark = pytest.mark.django_db
API_PREFIX = "api/v1/"
WRITE_METHODS = {"post", "put", "patch"}


@dataclass(frozen=True)
class Endpoint:
    route: str
    name: str  # as in the app's urls.py, without the namespace
    qualified_name: str
    params: tuple[str, ...]
    methods: tuple[str, ...]

    def __str__(self):
        return self.name


def _methods(callback) -> tuple[str, ...]:
    if getattr(callback, "actions", None):  # a ViewSet route: only the mapped methods exist
        return tuple(sorted(callback.actions))
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if cls is None:
        return ("get",)
    return tuple(
        m for m in cls.http_method_names if m not in ("options", "head", "trace") and hasattr(cls, m)
    )


def _walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}:{p.namespace}" if namespace and p.namespace else (p.namespace or namespace)
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p, namespace


def api_endpoints() -> list[Endpoint]:
    endpoints = []
    for route, pattern, namespace in _walk(get_resolver().url_patterns):
        if not route.startswith(API_PREFIX):
            continue
        if not pattern.name:
            raise AssertionError(
                f"/{route} has no URL name: name it so the isolation registry can refer to it"
            )
        qualified = f"{namespace}:{pattern.name}" if namespace else pattern.name
        endpoints.append(
            Endpoint(
                route, pattern.name, qualified, tuple(pattern.pattern.converters), _methods(pattern.callback)
            )
        )
    return endpoints


ENDPOINTS = api_endpoints()
isolation.autodiscover()


@pytest.fixture(scope="module", autouse=True)
def _registered_session_setup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        for setup in isolation.SESSION_SETUP:
            setup()


def test_every_endpoint_is_registered():
    unregistered = [
        f"/{e.route} ({e.name})"
        for e in ENDPOINTS
        if e.params and e.name not in isolation.TENANT_OBJECTS and e.name not in isolation.PLATFORM_ENDPOINTS
    ]
    assert not unregistered, (
        "These endpoints name an object but do not say how to make one of another tenant; register "
        "them with jfintech.testing.isolation.tenant_object (docs/tenancy.md):\n" + "\n".join(unregistered)
    )
    stale = set(isolation.TENANT_OBJECTS) - {e.name for e in ENDPOINTS}
    assert not stale, f"registered for isolation but no such URL name: {sorted(stale)}"


@dataclass
class World:
    a: object
    b: object
    principals: dict  # kind -> {role: APIClient}, all acting for tenant A
    b_admin: APIClient


def _client(*, user=None, key=None, tenant_slug=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    if tenant_slug:
        client.defaults["HTTP_X_TENANT"] = tenant_slug
    return client


@pytest.fixture
def world() -> World:
    a, b = TenantFactory(slug="iso-a"), TenantFactory(slug="iso-b")
    actor = Actor.for_system("isolation-test")
    principals = {"user of A": {}, "user of A and B acting as A": {}, "API key of A": {}}
    for role in Role.values:
        principals["user of A"][role] = _client(user=member(a, role))
        both = member(a, role)
        MembershipFactory(user=both, tenant=b, role=Role.ADMIN)
        principals["user of A and B acting as A"][role] = _client(user=both, tenant_slug=a.slug)
        key = services.api_key_create(tenant=a, actor=actor, name=f"iso-{role}", role=role)
        principals["API key of A"][role] = _client(key=key.plaintext)
    return World(a, b, principals, _client(user=member(b, Role.ADMIN)))


def _call(client: APIClient, method: str, url: str, body):
    if method not in WRITE_METHODS:
        return getattr(client, method)(url)
    body = body() if callable(body) else body  # a callable makes fresh uploads for each request
    fmt = "multipart" if any(hasattr(v, "read") for v in body.values()) else "json"
    return getattr(client, method)(url, body, format=fmt)


def _people_only(url: str) -> bool:
    """Endpoints no API key may use, whatever its role (managing memberships and keys)."""
    view = resolve(url).func.view_class
    return any(getattr(p, "area", None) in PEOPLE_ONLY for p in view.permission_classes)


def _describe(response) -> str:
    try:
        return f"{response.status_code} {response.json()}"
    except ValueError:
        return str(response.status_code)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.name in isolation.TENANT_OBJECTS], ids=str)
def test_tenant_b_objects_are_404_for_tenant_a(endpoint, world):
    registration = isolation.TENANT_OBJECTS[endpoint.name]
    kwargs = registration.make(world.b)
    url = reverse(endpoint.qualified_name, kwargs=kwargs)
    body = registration.bodies.get(endpoint.name, {})
    problems = []
    for method in endpoint.methods:
        for kind, by_role in world.principals.items():
            outcomes = {role: _call(client, method, url, body) for role, client in by_role.items()}
            statuses = {role: r.status_code for role, r in outcomes.items()}
            # 403 is a role that may not use the endpoint at all; some role must reach the lookup.
            leaks = {role: _describe(r) for role, r in outcomes.items() if r.status_code not in (403, 404)}
            if leaks:
                problems.append(f"{method.upper()} {url} as {kind}: {leaks}")
            elif 404 not in statuses.values() and not (kind == "API key of A" and _people_only(url)):
                problems.append(
                    f"{method.upper()} {url} as {kind}: every role got 403, none reached the object"
                )
    assert not problems, "\n".join(problems)
    if "get" in endpoint.methods:  # control: the registration names a real, reachable object
        control = world.b_admin.get(url)
        assert control.status_code == 200, f"tenant B's own admin cannot GET {url}: {_describe(control)}"


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.name in isolation.PLATFORM_ENDPOINTS], ids=str
)
def test_platform_endpoints_refuse_tenant_users_and_keys(endpoint, world):
    kwargs = dict.fromkeys(endpoint.params, 1)
    url = reverse(endpoint.qualified_name, kwargs=kwargs)
    for method in endpoint.methods:
        for kind, by_role in world.principals.items():
            for role, client in by_role.items():
                response = _call(client, method, url, {})
                assert response.status_code == 403, (
                    f"{method.upper()} {url} as {kind} ({role}): {_describe(response)}"
                )


def test_lists_show_only_the_callers_tenant(world):
    """List endpoints take no id; a representative check that B's rows stay out of A's lists."""
    MembershipFactory(tenant=world.b, role=Role.ANALYST, user__username="only-in-b")
    listed = world.principals["user of A and B acting as A"][Role.ADMIN].get(reverse("v1:membership-list"))
    assert listed.status_code == 200
    assert "only-in-b" not in listed.content.decode()
