"""Progress moves by itself: a run in flight on real workers, watched in a real Chromium.

The run's page and the runs list are opened while the run is still going; the progress cell's text
must change in the page the browser loaded (a marker set on that document survives: no reload),
from its in-flight text to later phases and counts. Screenshots: test-artifacts/run-progress-*.png.
"""

import hashlib

import pytest
from django.db import connection

from exceptions.tests.test_browser import ARTIFACTS, CHROMIUM_ARGS, gunicorn  # noqa: F401 (fixture)
from jfintech.tenancy.models import Role
from jfintech.testing.processes import wait_until
from jfintech.tests.factories import member
from reconciliation.models import IngestionBatch
from reconciliation.partitions import ensure_partitions
from reconciliation.runs import services
from reconciliation.runs.models import TERMINAL_RUN_STATUSES, Run, RunStatus
from reconciliation.runs.tests.factories import ACTOR, AS_OF, TenantFactory, definition, source_of

PAIRS = 150_000  # enough for the run to take several seconds on a shared 2-core machine
MARK = "window.__jfLoaded"  # set once on the loaded document; a reload would drop it


def _bulk(source, n: int) -> None:
    """``n`` records of ``source`` in one set-based INSERT (reference R<i>, amount i + 0.01)."""
    ensure_partitions(AS_OF, AS_OF)
    batch = IngestionBatch.objects.create(
        tenant_id=source.tenant_id,
        source=source,
        sha256=hashlib.sha256(f"bulk-{source.pk}".encode()).hexdigest(),
        status="loaded",
        rows_total=n,
        rows_accepted=n,
        rows_rejected=0,
        file_name="bulk",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO reconciliation_record (tenant_id, source_id, batch_id, kind, external_id,
                business_date, account, instrument, reference, currency, amount, status, version,
                value_date)
            SELECT %s, %s, %s, %s, 'X' || g, %s, '', '', 'R' || g, 'EUR', g + 0.01, 'active', 1, %s
            FROM generate_series(1, %s) g
            """,
            [source.tenant_id, source.pk, batch.pk, source.kind, AS_OF, AS_OF, n],
        )


def _progress_text(page) -> str:
    return page.locator(".jf-progress").first.inner_text()


def _moves_without_reload(page, before: str) -> None:
    """Wait until the cell's text differs from ``before`` on the same document (no reload)."""
    page.wait_for_function(
        f"""(before) => {MARK} === true
            && document.querySelector('.jf-progress').textContent.trim() !== before""",
        arg=before,
        timeout=240_000,  # a liveness bound: on a loaded 2-core machine a phase can take minutes
    )


@pytest.mark.slow
@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_running_runs_progress_changes_on_its_page_and_in_the_list_without_reload(
    gunicorn,  # noqa: F811
    celery_workers,
    monkeypatch,
):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    tenant = TenantFactory(slug="progress-bank")
    member(tenant, Role.ANALYST, username="progress-analyst", is_staff=True)
    defn = definition(tenant, name="gl-vs-bank")
    _bulk(source_of(defn, "left"), PAIRS)
    _bulk(source_of(defn, "right"), PAIRS)
    base = gunicorn.extra["url"]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.goto(f"{base}/admin/login/?next=/admin/reconciliation/run/")
            page.fill("#id_username", "progress-analyst")
            page.fill("#id_password", "pw")
            page.click("input[type=submit]")
            page.wait_for_url("**/admin/reconciliation/run/")
            listing = context.new_page()

            # Started only now, with the browser logged in: the pages open while it runs.
            run = services.run_start(
                tenant=tenant, actor=ACTOR, definition=defn, trigger="admin", as_of=AS_OF
            )
            page.goto(f"{base}/admin/reconciliation/run/{run.pk}/change/")
            listing.goto(f"{base}/admin/reconciliation/run/")
            for p in (page, listing):
                p.evaluate(f"() => {{ {MARK} = true; }}")
            on_page, in_list = _progress_text(page), _progress_text(listing)
            assert not on_page.startswith("completed"), f"the run finished before the page opened: {on_page}"
            page.screenshot(path=str(ARTIFACTS / "run-progress-page-before.png"), full_page=True)

            _moves_without_reload(page, on_page)
            moved = _progress_text(page)
            page.screenshot(path=str(ARTIFACTS / "run-progress-page-moved.png"), full_page=True)
            _moves_without_reload(listing, in_list)

            # Once the run is done the list shows its final counts, still without a reload.
            finished = wait_until(
                lambda: Run.objects.filter(pk=run.pk, status__in=TERMINAL_RUN_STATUSES).first(),
                timeout=300,
                message=f"run {run.pk} did not finish",
            )
            assert finished.status == RunStatus.COMPLETED, finished.error
            total = f"{2 * PAIRS:,} / {2 * PAIRS:,} (100%)"
            expect(listing.locator(".jf-progress").first).to_have_text(f"completed: {total}", timeout=15_000)
            assert listing.evaluate(f"() => {MARK}") is True
            listing.screenshot(path=str(ARTIFACTS / "run-progress-list-completed.png"), full_page=True)
            # The run's own page reloads itself once terminal, to show the finished run's links.
            expect(page.locator(".jf-progress").first).to_have_text(f"completed: {total}", timeout=15_000)
        finally:
            browser.close()
    assert moved != on_page
