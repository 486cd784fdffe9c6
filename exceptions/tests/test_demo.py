"""`make demo` leaves the demo desk with every break type open, some assigned, one pending approval."""

import io

import pytest

from exceptions.demo import seed_demo_cases
from exceptions.models import BreakType, Case, CaseStatus
from jfintech.tenancy.demo import seed_demo_tenant

pytestmark = pytest.mark.django_db


def test_the_demo_desk_has_work_of_every_kind_and_reseeding_changes_nothing():
    seed_demo_tenant(io.StringIO())
    seed_demo_cases(io.StringIO())
    snapshot = list(Case.objects.order_by("id").values("id", "status", "assignee_id", "run_count"))
    seed_demo_cases(io.StringIO())

    unresolved = Case.objects.exclude(status=CaseStatus.RESOLVED)
    assert set(unresolved.values_list("break_type", flat=True)) == set(BreakType.values)
    assert unresolved.filter(assignee__isnull=False).count() >= 2
    assert unresolved.filter(status=CaseStatus.PENDING_APPROVAL).count() == 1
    assert list(Case.objects.order_by("id").values("id", "status", "assignee_id", "run_count")) == snapshot
