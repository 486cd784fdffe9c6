"""The desk in a real headless Chromium against a gunicorn subprocess (what an analyst does all day).

An analyst filters to unassigned breaks older than 2 business days, bulk-assigns them to
themselves, opens one, comments and resolves it; an approver approves a pending write-off.
Screenshots of the list and the case page go to test-artifacts/ (git-ignored).
"""

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from exceptions import services
from exceptions.models import Case
from exceptions.tests.factories import TenantFactory, break_input, member
from jfintech.audit import Actor
from jfintech.tenancy.models import Role
from jfintech.testing import processes
from jfintech.testing.processes import ROOT, wait_until

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RECON = Actor.for_system("reconciliation")


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # refused while starting, or a slow first answer
        return False


@pytest.fixture
def gunicorn(tmp_path):
    server = processes.gunicorn_server(tmp_path)
    server.start()
    try:
        wait_until(lambda: _answers(server.extra["url"] + "/livez"), timeout=120, message="gunicorn not up")
        yield server
    finally:
        server.stop()


@pytest.fixture
def desk():
    """A tenant with two old unassigned breaks, a fresh one, an assigned one and a pending write-off."""
    tenant = TenantFactory(slug="browser-bank")
    people = {
        "analyst": member(tenant, Role.ANALYST, username="desk-analyst", is_staff=True),
        "maker": member(tenant, Role.ANALYST, username="desk-maker", is_staff=True),
        "approver": member(tenant, Role.APPROVER, username="desk-approver", is_staff=True),
    }
    services.approval_threshold_set(tenant=tenant, actor=RECON, currency="EUR", amount=Decimal("1000"))
    specs = {
        "OLD-A": {"amount": "120.00"},
        "OLD-B": {"amount": "4500.00", "break_type": "missing_right"},
        "FRESH": {"amount": "80.00"},
        "OLD-MINE": {"amount": "60.00"},
        "BIG": {"amount": "25000.00"},
    }
    breaks = {ref: break_input(1, key=ref, reference=ref, **spec) for ref, spec in specs.items()}
    services.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=1,
        trace_id="c0ffee" * 5 + "00",
        breaks=list(breaks.values()),
        actor=RECON,
    )
    cases = {ref: Case.objects.get(fingerprint=b.fingerprint) for ref, b in breaks.items()}
    week_ago = timezone.now() - timedelta(days=7)  # at least 4 business days, whatever today is
    Case.objects.filter(reference__in=["OLD-A", "OLD-B", "OLD-MINE", "BIG"]).update(first_seen_at=week_ago)
    maker = {"tenant": tenant, "actor": Actor.for_user(people["maker"]), "user": people["maker"]}
    for ref in ("OLD-MINE", "BIG"):
        services.case_assign(tenant=tenant, actor=RECON, case_id=cases[ref].pk, assignee=people["maker"])
    services.case_request_resolution(**maker, case_id=cases["BIG"].pk, kind="write_off", note="uncollectable")
    return {"tenant": tenant, "cases": cases, **people}


def _login(browser, base, username):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.goto(f"{base}/admin/login/?next=/admin/exceptions/case/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/exceptions/case/")
    return page


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_analyst_triages_and_an_approver_approves_in_a_real_browser(gunicorn, desk, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls below are plain sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    base, cases = gunicorn.extra["url"], desk["cases"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = _login(browser, base, "desk-analyst")
            expect(page.locator("#desk-glance")).to_have_count(0)  # the list page, not the index
            page.get_by_role("link", name="older than 2 days").click()
            page.get_by_role("link", name="unassigned", exact=True).click()
            rows = page.locator("#result_list tbody tr")
            expect(rows).to_have_count(2)  # OLD-A and OLD-B; FRESH is too new, the others assigned
            page.screenshot(path=str(ARTIFACTS / "desk-list.png"), full_page=True)

            page.check("#action-toggle")
            page.select_option("select[name=action]", "assign_to_me")
            page.click("button[name=index]")
            expect(page.locator(".messagelist")).to_contain_text("Assigned to you: 2 case(s).")

            page.goto(f"{base}/admin/exceptions/case/?assignee=mine")
            page.get_by_role("link", name="OLD-B").click()
            expect(page.locator("#records tr.jf-differs")).not_to_have_count(0)
            page.fill("#comment-form textarea", "Statement line missing: asked the bank for the camt.053.")
            page.click("#comment-form button")
            expect(page.locator("#comments")).to_contain_text("asked the bank for the camt.053")
            page.select_option("#resolve-form select[name=reason]", "fixed_at_source")
            page.fill("#resolve-form input[name=note]", "bank re-sent the statement")
            page.click("#resolve-form button")
            expect(page.locator("#case-status")).to_have_text("resolved")
            expect(page.locator("#history")).to_contain_text("case.resolved")
            page.screenshot(path=str(ARTIFACTS / "desk-case.png"), full_page=True)

            approver = _login(browser, base, "desk-approver")
            approver.goto(f"{base}/admin/exceptions/case/{cases['BIG'].pk}/change/")
            expect(approver.locator("#pending-approval")).to_contain_text("requested by desk-maker")
            approver.fill(
                "#pending-approval form:has(#approve-button) input[name=note]", "agreed, credit memo seen"
            )
            approver.click("#approve-button")
            expect(approver.locator("#case-status")).to_have_text("resolved")
            approver.screenshot(path=str(ARTIFACTS / "desk-approved.png"), full_page=True)
        finally:
            browser.close()

    assert {c.assignee.username for c in Case.objects.filter(reference__in=["OLD-A", "OLD-B"])} == {
        "desk-analyst"
    }
    old_b = Case.objects.get(pk=cases["OLD-B"].pk)
    assert (old_b.status, old_b.resolution_reason) == ("resolved", "fixed_at_source")
    big = Case.objects.get(pk=cases["BIG"].pk)
    assert (big.resolution_reason, big.resolved_by) == (
        "written_off",
        "desk-maker, approved by desk-approver",
    )
    assert Case.objects.get(pk=cases["FRESH"].pk).assignee is None
