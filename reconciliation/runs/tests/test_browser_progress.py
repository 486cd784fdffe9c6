"""Progress moves by itself: a run in flight on real workers, watched in a real Chromium.

The run's page and the runs list are opened while the run is still going; the progress cell's text
must change in the page the browser loaded (a marker set on that document survives: no reload),
from its in-flight text to later phases and counts. Screenshots: test-artifacts/run-progress-*.png.

The run is held at two points by table locks on a second connection, not left to the machine's
speed: an undisturbed run of this size finishes in about 3 s, faster than the page polls (2 s),
and the run's own page reloads itself once terminal, so a free-running run could jump straight
from its first text to "completed" and never show a change on the same document. Held, it shows
"pending"/"fetching" while the fetches cannot freeze their scope, then "matching" while the
engine cannot write its matches.
"""

import hashlib
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from exceptions.tests.test_browser import ARTIFACTS, CHROMIUM_ARGS, gunicorn  # noqa: F401 (fixture)
from jfintech.tenancy.models import Role
from jfintech.testing.processes import database_url_for_current_connection, wait_until
from jfintech.tests.factories import member
from reconciliation.models import IngestionBatch
from reconciliation.partitions import ensure_partitions
from reconciliation.runs import services
from reconciliation.runs.models import TERMINAL_RUN_STATUSES, Run, RunStatus
from reconciliation.runs.tests.factories import ACTOR, AS_OF, TenantFactory, definition, source_of

PAIRS = 150_000  # enough for a sharded run (several match_shard tasks), as production sizes are
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


@contextmanager
def _held(table: str):
    """Writes to ``table`` wait while this is open (reads go on: EXCLUSIVE mode)."""
    with psycopg.connect(database_url_for_current_connection()) as conn:
        conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield
        conn.rollback()


def _status(run) -> str:
    return Run.objects.filter(pk=run.pk).values_list("status", flat=True).get()


def _progress_text(page) -> str:
    return page.locator(".jf-progress").first.inner_text()


def _shows_without_reload(page, prefix: str) -> None:
    """Wait until the cell's text starts with ``prefix`` on the same document (no reload)."""
    page.wait_for_function(
        f"""(prefix) => {MARK} === true
            && document.querySelector('.jf-progress').textContent.trim().startsWith(prefix)""",
        arg=prefix,
        timeout=120_000,  # a liveness bound: the run is held in the phase the text must reach
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

            # Started only now, with the browser logged in: the pages open while it is held before
            # matching (its fetches cannot freeze their scope), then while it is held in matching.
            with _held("reconciliation_match"):
                with _held("reconciliation_run_scope"):
                    run = services.run_start(
                        tenant=tenant, actor=ACTOR, definition=defn, trigger="admin", as_of=AS_OF
                    )
                    page.goto(f"{base}/admin/reconciliation/run/{run.pk}/change/")
                    listing.goto(f"{base}/admin/reconciliation/run/")
                    for p in (page, listing):
                        p.evaluate(f"() => {{ {MARK} = true; }}")
                    for p in (page, listing):
                        assert _progress_text(p) in ("pending: -", "fetching: -"), _progress_text(p)
                    page.screenshot(path=str(ARTIFACTS / "run-progress-page-before.png"), full_page=True)
                # The fetches go on; the engine waits to write its matches, the run in "matching".
                wait_until(lambda: _status(run) == RunStatus.MATCHING, timeout=120, message="never matching")
                for p in (page, listing):
                    _shows_without_reload(p, "matching: ")
                page.screenshot(path=str(ARTIFACTS / "run-progress-page-moved.png"), full_page=True)

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
