"""The run's admin page links what it found, and its progress is readable as JSON for the poll."""

import pytest
from django.urls import reverse

from exceptions.models import Case
from exceptions.tests.factories import member
from jfintech.tenancy.models import Role
from reconciliation.runs.tests.factories import TenantFactory, definition, records, source_of
from reconciliation.runs.tests.test_matching import reconcile

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_run_page_links_breaks_cases_matches_and_batches_and_reports_progress(client):
    tenant = TenantFactory()
    analyst = member(tenant, Role.ANALYST, username="ana", is_staff=True)
    defn = definition(tenant, name="securities-cash")
    left, right = source_of(defn, "left"), source_of(defn, "right")
    records(left, {"reference": "A", "amount": "10"}, {"reference": "B", "amount": "1234567.5"})
    records(right, {"reference": "A", "amount": "10"})
    run = reconcile(defn)
    case = Case.objects.get(reference="B")
    client.force_login(analyst)

    page = client.get(reverse("admin:reconciliation_run_change", args=[run.pk])).content.decode()
    assert f"securities-cash — 20 Nov 2026 (#{run.pk})" in page
    assert reverse("admin:exceptions_case_change", args=[case.pk]) in page
    assert "EUR 1,234,567.50" in page
    assert f"?run_id={run.pk}&amp;pass_name=" in page
    assert reverse("admin:reconciliation_ingestionbatch_change", args=[left.batches.get().pk]) in page

    progress = client.get(reverse("admin:reconciliation_run_progress", args=[run.pk])).json()
    assert progress == {
        "id": run.pk,
        "status": "completed",
        "progress_done": 3,
        "progress_total": 3,
        "terminal": True,
        "text": "completed: 3 / 3 (100%)",
    }
    other = member(TenantFactory(), Role.ANALYST, username="elsewhere", is_staff=True)
    client.force_login(other)
    assert client.get(reverse("admin:reconciliation_run_progress", args=[run.pk])).status_code == 404
