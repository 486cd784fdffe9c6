"""The analyst's day in a real Chromium against gunicorn: everything is linked, money reads as money.

From the desk (admin index) to a case, to the run that found it, to another break of that run and
its case, back to the run and one of its matches, by clicking links only. Screenshots at 1366x768
and 1920x1080 go to test-artifacts/ (named analyst-*-<width>.png); at 1366 px the case list has no
horizontal scroll.
"""

import pytest

from exceptions.models import Case
from exceptions.tests.factories import member
from exceptions.tests.test_browser import ARTIFACTS, CHROMIUM_ARGS, gunicorn  # noqa: F401 (fixture)
from jfintech.tenancy.models import Role
from reconciliation.runs.tests.factories import TenantFactory, definition, records, source_of
from reconciliation.runs.tests.test_matching import reconcile

SIZES = [(1366, 768), (1920, 1080)]


@pytest.fixture
def reconciled():
    """A real run: one matched pair (pass exact), an amount break in KWD and a missing JPY item."""
    tenant = TenantFactory(slug="analyst-bank")
    member(tenant, Role.ANALYST, username="day-analyst", is_staff=True)
    defn = definition(tenant, name="gl-vs-bank")
    left, right = source_of(defn, "left"), source_of(defn, "right")
    records(
        left,
        {"reference": "PAID-1", "amount": "1260890.000000", "currency": "GBP"},
        {"reference": "KWD-1", "amount": "1500.250", "currency": "KWD"},
        {"reference": "JPY-1", "amount": "-98765", "currency": "JPY"},
    )
    records(
        right,
        {"reference": "PAID-1", "amount": "1260890.00", "currency": "GBP"},
        {"reference": "KWD-1", "amount": "1500.000", "currency": "KWD"},
    )
    run = reconcile(defn)
    assert (run.status, run.matched) == ("completed", 2), run.breaks_by_type
    return {"tenant": tenant, "run": run, "definition": defn}


def _no_horizontal_scroll(page) -> bool:
    """Neither the page nor the admin's results box (its own overflow-x: auto) scrolls sideways."""
    return page.evaluate(
        """() => [document.documentElement, document.querySelector('#changelist .results')]
              .every(el => el.scrollWidth <= el.clientWidth)"""
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_analysts_path_by_links_alone_at_both_sizes(gunicorn, reconciled, monkeypatch):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    base, run = gunicorn.extra["url"], reconciled["run"]
    kwd = Case.objects.get(reference="KWD-1")
    jpy = Case.objects.get(reference="JPY-1")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            for width, height in SIZES:
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                page.goto(f"{base}/")
                expect(page.locator("#landing-links")).to_contain_text("API documentation")
                page.get_by_role("link", name="The exception desk").click()
                page.fill("#id_username", "day-analyst")
                page.fill("#id_password", "pw")
                page.click("input[type=submit]")
                expect(page.locator("#desk-legend")).to_contain_text("Amount Mismatch")
                page.screenshot(path=str(ARTIFACTS / f"analyst-1-desk-index-{width}.png"), full_page=True)

                # The desk's list: money by minor units, right-aligned; no sideways scroll at 1366.
                page.get_by_role("link", name="Cases", exact=True).first.click()
                page.wait_for_load_state("load")  # measure with the stylesheets applied, not before
                rows = page.locator("#result_list tbody tr")
                expect(rows).to_have_count(2)
                expect(page.locator("#result_list")).to_contain_text("KWD 0.250")
                expect(page.locator("#result_list")).to_contain_text("JPY 98,765")  # at stake: abs
                for column in ("type", "amount at stake", "age (bd)", "SLA due", "assignee", "priority"):
                    header = page.locator("#result_list thead th", has_text=column).first
                    assert header.is_visible(), column
                    box = header.bounding_box()
                    results = page.locator("#changelist .results").bounding_box()
                    assert box["x"] + box["width"] <= results["x"] + results["width"], (column, box)
                if width == 1366:  # the laptop width; at 1920 the secondary columns show too
                    assert _no_horizontal_scroll(page), "the case list scrolls sideways at 1366px"
                page.screenshot(path=str(ARTIFACTS / f"analyst-2-case-list-{width}.png"), full_page=True)

                # A case → its run.
                page.get_by_role("link", name="KWD-1").click()
                expect(page.locator("#case-page .jf-case-head")).to_contain_text("KWD 0.250")
                expect(page.locator("#records")).to_contain_text("1,500.250")
                page.screenshot(path=str(ARTIFACTS / f"analyst-3-case-{width}.png"), full_page=True)
                page.locator("#last-run-link").click()
                expect(page.locator("h2", has_text="gl-vs-bank — ")).to_have_count(1)
                found = page.locator("fieldset", has_text="What this run found")
                expect(found).to_contain_text("KWD 0.250")
                expect(found).to_contain_text("batch ")
                page.screenshot(path=str(ARTIFACTS / f"analyst-4-run-{width}.png"), full_page=True)

                # Another break of that run → its case.
                found.locator("li", has_text="JPY-1").get_by_role("link", name="break").first.click()
                expect(page.locator(".jf-break-records")).to_contain_text("JPY -98,765")
                page.screenshot(path=str(ARTIFACTS / f"analyst-5-break-{width}.png"), full_page=True)
                page.get_by_role("link", name=f"case {jpy.pk}").first.click()
                expect(page.locator("#case-page")).to_contain_text("JPY-1")
                # … back to the run, then one of its matches by pass.
                page.locator("#last-run-link").click()
                page.locator("fieldset", has_text="What this run found").get_by_role(
                    "link", name="pass 1"
                ).first.click()
                page.locator("#result_list tbody tr th a, #result_list tbody tr td a").first.click()
                match = page.locator(".jf-match-records")
                expect(match).to_contain_text("PAID-1")
                expect(match).to_contain_text("GBP 1,260,890.00")
                expect(page.locator("body")).to_contain_text(f"run {run.pk}")
                page.screenshot(path=str(ARTIFACTS / f"analyst-6-match-{width}.png"), full_page=True)
                page.context.close()
        finally:
            browser.close()
    assert kwd.pk != jpy.pk
