"""A run's matches as integrations page through them: filtered by run, newest first, read by primary
key between the run's first and last match however large the match table grows."""

import pytest
from django.db import connection

from jfintech.tenancy.models import Role
from jfintech.tests.factories import member
from reconciliation.matching import selectors
from reconciliation.matching.tests.factories import reconcile, records, two_way
from reconciliation.matching.tests.test_apis import BASE, EXACT, client
from reconciliation.runs.models import Match

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_runs_matches_are_listed_by_run_newest_first():
    defn, left, right = two_way([EXACT])
    pairs = [{"reference": f"R{i}", "amount": "10"} for i in range(3)]
    records(left, *pairs)
    records(right, *pairs)
    first = reconcile(defn)
    records(left, {"reference": "LATE", "amount": "5"})
    records(right, {"reference": "LATE", "amount": "5"})
    second = reconcile(defn)
    analyst = client(member(defn.tenant, Role.ANALYST), defn.tenant)

    listed = analyst.get(f"{BASE}/matches/", {"run": first.pk})
    assert listed.status_code == 200
    expected = list(Match.objects.filter(run_id=first.pk).order_by("-id").values_list("id", flat=True))
    assert len(expected) == 3
    assert [row["id"] for row in listed.json()["results"]] == expected
    (late,) = analyst.get(f"{BASE}/matches/", {"run": second.pk}).json()["results"]
    assert late["run_id"] == second.pk
    # Not a run id: the filter is ignored, as the other filters' bad values are.
    assert len(analyst.get(f"{BASE}/matches/", {"run": "x"}).json()["results"]) == 4


def test_a_page_of_an_old_runs_matches_is_read_by_id_between_its_first_and_last_match():
    """The run's own index (BRIN) would leave the planner walking the primary key back from the
    newest match of the table to the run's: every later run's matches read and thrown away."""
    defn, left, right = two_way([EXACT])
    pairs = [{"reference": f"R{i}", "amount": "10"} for i in range(2000)]
    records(left, *pairs)
    records(right, *pairs)
    old = reconcile(defn)
    ids = sorted(Match.objects.filter(run_id=old.pk).values_list("id", flat=True))
    assert (old.first_match_id, old.last_match_id) == (ids[0], ids[-1])
    with connection.cursor() as cursor:  # 50,000 later matches of ten later runs
        cursor.execute(
            """
            INSERT INTO reconciliation_match (tenant_id, definition_id, run_id, pass_no, pass_name, status,
                                              created_at)
            SELECT %s, %s, %s + 1 + g / 5000, 1, 'exact_ref', 'active', now()
            FROM generate_series(0, 49999) g
            """,
            [defn.tenant_id, defn.pk, old.pk],
        )
        cursor.execute("ANALYZE reconciliation_match")
    page = selectors.match_list(tenant=defn.tenant, run_id=old.pk)[:50]
    assert "Index Cond: ((id >= " in page.explain()
    assert [m.pk for m in page] == ids[::-1][:50]
