"""The API as gunicorn serves it: the docs page in a real Chromium cut off from the internet, and a
crash's 500 whose trace id leads to the trace and the logged traceback."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from jfintech.testing import processes
from jfintech.testing.processes import ROOT, wait_until

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # refused while starting
        return False


def _serve(tmp_path, **env):
    server = processes.gunicorn_server(tmp_path, **env).start()
    wait_until(lambda: _answers(server.extra["url"] + "/livez"), timeout=120, message="gunicorn not up")
    return server


def test_swagger_ui_renders_the_operations_without_the_internet(tmp_path, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop lives in this thread
    ARTIFACTS.mkdir(exist_ok=True)
    server = _serve(tmp_path)
    outside: list[str] = []

    def loopback_only(route):
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:  # what a bank's proxy (or no network at all) does to the request
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1366, "height": 768})
                context.route("**/*", loopback_only)
                page = context.new_page()
                page.goto(server.extra["url"] + "/api/docs/")
                case_list = page.locator(".opblock-summary-path", has_text="/api/v1/exceptions/cases/")
                expect(case_list.first).to_be_visible(timeout=30_000)
                assert page.locator(".opblock").count() > 50  # every operation, not an error box
                expect(page.locator("button.authorize")).to_be_visible()  # the API key scheme
                page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
            finally:
                browser.close()
    finally:
        server.stop()
    assert outside == [], f"the docs page asked another host for: {outside}"


def test_a_database_outage_answers_503_with_the_trace_id_of_its_trace_and_logged_traceback(tmp_path):
    # A database that is not there: the API key lookup fails; an outage, not a bug, so 503 with
    # Retry-After (docs/reliability.md), still logged with its traceback under the trace id.
    server = _serve(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:1/gone", DB_POOL="false")
    try:
        response = requests.get(
            server.extra["url"] + "/api/v1/tenant/",
            headers={"Authorization": "Api-Key someprefix.somesecret"},
            timeout=30,
        )
    finally:
        server.stop()
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert (error["code"], set(error["details"])) == ("service_unavailable", {"trace_id"})
    assert "OperationalError" not in response.text  # no exception text or traceback leaks
    assert "Traceback" not in response.text
    trace_id = error["details"]["trace_id"]
    spans = processes.read_spans(tmp_path / "spans")
    assert any(s["trace_id"] == trace_id and s["kind"] == "SERVER" for s in spans), "no trace with that id"
    logged = [r for r in server.log_records() if r.get("trace_id") == trace_id and r.get("level") == "error"]
    assert "OperationalError" in str(logged), "the traceback is not logged under that trace id"
    assert any(r.get("request_id") == error["request_id"] for r in server.log_records())
