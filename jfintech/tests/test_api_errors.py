"""Every answer under /api/ that is an error has the one shape (docs/api.md), whoever produced it:
a DRF view, Django's resolver, a crash, a CSRF check; with DEBUG on or off. A caller without
credentials is challenged (401 + WWW-Authenticate); one without the right is refused (403)."""

from __future__ import annotations

import ast
import re

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from jfintech.audit import Actor
from jfintech.tenancy import services
from jfintech.tenancy.models import Role
from jfintech.testing import isolation
from jfintech.testing.processes import ROOT
from jfintech.tests.factories import TenantFactory, member
from jfintech.tests.test_tenant_isolation import ENDPOINTS

pytestmark = pytest.mark.django_db
CHALLENGE = 'Api-Key realm="api"'
OPEN_ENDPOINTS = {"root"}  # readable without credentials (it lists addresses, not data)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is ``status`` in the API's error shape; returns the error object."""
    described = f"{response.status_code} {response.get('Content-Type')} {response.content[:300]!r}"
    assert response.status_code == status, described
    assert response["Content-Type"] == "application/json", described
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}, described
    assert error["message"], described
    assert error["request_id"], described
    if code is not None:
        assert error["code"] == code, described
    return error


@pytest.fixture
def tenant():
    return TenantFactory(slug="errors-bank")


@pytest.fixture
def admin(tenant):
    client = APIClient(raise_request_exception=False)
    client.force_login(member(tenant, Role.ADMIN))
    return client


@pytest.fixture
def anonymous():
    return APIClient(raise_request_exception=False)


@pytest.fixture(params=[False, True], ids=["DEBUG off", "DEBUG on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def _garbage_path(route: str) -> str:
    return "/" + re.sub(r"<[^>]+>", "garbage", route)


# --- 401 / 403 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.name not in OPEN_ENDPOINTS], ids=str)
def test_every_endpoint_challenges_a_caller_without_credentials(endpoint, anonymous):
    path = "/" + re.sub(r"<[^>]+>", "1", endpoint.route)
    for method in endpoint.methods:
        response = getattr(anonymous, method)(path)
        assert_error(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == CHALLENGE, f"{method.upper()} {path}"


def test_a_wrong_api_key_is_challenged_too(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Api-Key nope.wrong")
    response = anonymous.get("/api/v1/tenant/")
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == CHALLENGE


def test_an_authenticated_caller_without_the_right_gets_403_without_a_challenge(tenant):
    analyst = APIClient()
    analyst.force_login(member(tenant, Role.ANALYST))
    key = services.api_key_create(
        tenant=tenant, actor=Actor.for_system("test"), name="feed", role=Role.INTEGRATION
    )
    integration = APIClient()
    integration.credentials(HTTP_AUTHORIZATION=f"Api-Key {key.plaintext}")
    for client in (analyst, integration):
        response = client.get("/api/v1/memberships/")
        assert_error(response, 403, "permission_denied")
        assert "WWW-Authenticate" not in response


# --- Django's own errors under /api/ --------------------------------------------------------------

BAD_REQUESTS = [
    ("get", "/api/v1/runs/abc/", 404, "not_found"),  # the path of the issue: no such endpoint
    ("get", "/api/v1/reconciliation/runs/abc/", 404, "not_found"),  # the converter does not match
    ("get", "/api/v1/reconciliation/runs/-1/", 404, "not_found"),
    ("post", "/api/v1/nope/", 404, "not_found"),
    ("get", "/api/v1/nope", 404, "not_found"),  # no slash, and none would help
    ("get", "/api/", 404, "not_found"),
    ("get", "/api/v2/", 404, "not_found"),
    ("delete", "/api/schema/nope/", 404, "not_found"),
    ("get", "/api/docs/nope/", 404, "not_found"),
]


@pytest.mark.parametrize(("method", "path", "status", "code"), BAD_REQUESTS, ids=lambda v: str(v))
def test_bad_paths_answer_the_error_shape(method, path, status, code, anonymous, debug):
    assert_error(getattr(anonymous, method)(path), status, code)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_write_without_the_trailing_slash_is_not_redirected_into_a_read(method, admin, debug):
    # A 301 would make an HTTP client repeat "start a run" as GET /runs/: a 200 list, no run.
    error = assert_error(getattr(admin, method)("/api/v1/reconciliation/runs"), 404, "not_found")
    assert "/api/v1/reconciliation/runs/" in error["message"]


def test_a_read_without_the_trailing_slash_is_still_redirected(admin):
    response = admin.get("/api/v1/reconciliation/runs")
    assert (response.status_code, response["Location"]) == (301, "/api/v1/reconciliation/runs/")


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.params], ids=str)
def test_every_endpoint_with_a_garbage_id_answers_the_error_shape(endpoint, admin, debug):
    path = _garbage_path(endpoint.route)
    for method in (*endpoint.methods, "get", "delete"):
        assert_error(getattr(admin, method)(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("put", "/api/v1/exceptions/cases/"), ("delete", "/api/v1/tenant/"), ("post", "/api/v1/")],
)
def test_a_method_the_endpoint_does_not_have_is_405_in_the_shape(method, path, admin, debug):
    response = getattr(admin, method)(path)
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


@pytest.mark.urls("jfintech.tests.urls_api_errors")
@pytest.mark.parametrize("path", ["/api/v1/test-crash/", "/api/v1/test-crash-api/"])
def test_a_crash_is_a_500_in_the_shape(path, anonymous, debug):
    error = assert_error(anonymous.get(path), 500, "server_error")
    assert set(error["details"]) == {"trace_id"}  # the id is checked against the spans in test_api_served
    assert "a bug" not in str(error)  # no traceback or exception text leaks, not even with DEBUG on


@pytest.mark.urls("jfintech.tests.urls_api_errors")
def test_a_non_drf_view_answers_405_in_the_shape_with_allow(anonymous, debug):
    response = anonymous.get("/api/v1/test-plain/")
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


@pytest.mark.urls("jfintech.tests.urls_api_errors")
def test_pages_outside_the_api_keep_django_s_answers(anonymous):
    assert anonymous.get("/test-crash/").status_code == 500
    assert "json" not in anonymous.get("/test-crash/")["Content-Type"]
    assert "json" not in anonymous.get("/admin/nope/")["Content-Type"]


@pytest.mark.urls("jfintech.tests.urls_api_errors")
def test_a_csrf_failure_has_its_own_code(tenant, debug):
    # A browser session (the browsable API) posting without the token, to a DRF view...
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member(tenant, Role.ADMIN))
    response = browser.post("/api/v1/memberships/", {}, content_type="application/json")
    assert_error(response, 403, "csrf_failed")
    # ... and to a plain Django view (Django's CsrfViewMiddleware, settings.CSRF_FAILURE_VIEW).
    assert_error(browser.post("/api/v1/test-plain/"), 403, "csrf_failed")


# --- The API's root, the schema and the docs page -------------------------------------------------


def test_the_api_root_lists_every_collection_and_each_link_answers(anonymous, admin):
    body = anonymous.get("/api/v1/").json()
    sections = body["sections"]
    assert {"exceptions", "ingestion", "reconciliation", "health", "tenant", "memberships"} <= set(sections)
    links = {name: url for section in sections.values() for name, url in section.items()}
    expected = {e.name for e in ENDPOINTS if not e.params and e.name != "root"}
    assert set(links) == expected
    for name, url in links.items():
        assert url.startswith("http://testserver/api/v1/"), name
        if "get" in next(e for e in ENDPOINTS if e.name == name).methods:
            # A platform collection (the tenants) answers a tenant admin 403, by design.
            assert admin.get(url).status_code == (403 if name in isolation.PLATFORM_ENDPOINTS else 200), name
    assert anonymous.get(body["docs"]).status_code == 200


def test_the_schema_is_generated_without_a_warning(tmp_path):
    # --fail-on-warn turns drf-spectacular's warnings (an authenticator it cannot describe, enum
    # names that collide, a view it cannot introspect) into a failure; --validate checks OpenAPI 3.
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
    schema = (tmp_path / "schema.yaml").read_text()
    assert "apiKeyAuth:" in schema
    assert not re.search(r"\b\w+[0-9a-f]{3}Enum\b", schema)  # no hashed enum names (Status6f3Enum)


def test_the_docs_page_loads_nothing_from_outside(anonymous):
    html = anonymous.get("/api/docs/").content.decode()
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html), "an asset from another host"
    assert "cdn" not in html.lower()
    assets = re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", html)
    assert len(assets) >= 3  # css, the bundle and the preset: each served by us
    for asset in assets:
        assert Client().get(asset).status_code == 200, asset


# --- docs/api.md lists the codes ------------------------------------------------------------------

APPS = ("jfintech", "reconciliation", "exceptions", "reporting", "filings")


def _application_error_codes() -> dict[str, str]:
    """Each ``code`` an ``ApplicationError(...)`` is raised with in the apps' code -> where."""
    codes = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                func = getattr(node, "func", None)
                if getattr(func, "id", getattr(func, "attr", None)) != "ApplicationError":
                    continue
                code = {k.arg: k.value for k in node.keywords}.get("code")
                code = code if code is not None else (node.args[1] if len(node.args) > 1 else None)
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert code is None or isinstance(code, ast.Constant), f"{where}: a code is a literal"
                codes.setdefault(code.value if code is not None else "invalid", where)
    return codes


def test_every_application_error_code_is_listed_in_docs_api_md():
    listed = set(re.findall(r"`([a-z_]+)`", (ROOT / "docs" / "api.md").read_text()))
    codes = _application_error_codes()
    assert len(codes) > 50  # the scan finds the codes (a broken scan would pass vacuously)
    missing = {code: where for code, where in codes.items() if code not in listed}
    assert not missing, f"codes raised but not listed in docs/api.md: {missing}"
