"""The deadline beat task on a real Celery worker: reminders written once, the overdue gauge set."""

import pytest

from filings import tasks
from filings.models import Filing
from filings.tests.workflow import People, to_pending
from jfintech.audit.models import AuditEvent
from jfintech.testing.processes import wait_until


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_the_reminder_task_runs_on_a_worker(celery_workers, configured):
    filings = to_pending(configured, People(configured))
    Filing.objects.filter(pk=filings[0].pk).update(due_date="2020-01-01")  # overdue
    result = tasks.remind_deadlines.delay()
    assert result.get(timeout=60)["overdue"]["ctr"] == 1
    wait_until(
        lambda: Filing.objects.filter(pk=filings[0].pk, reminded_on__isnull=False).exists(),
        timeout=30,
        message="no reminder recorded",
    )
    assert AuditEvent.objects.filter(action="filing.reminder", object_id=str(filings[0].pk)).count() == 1
    reminded = AuditEvent.objects.filter(action="filing.reminder").count()
    assert tasks.remind_deadlines.delay().get(timeout=60)["reminded"] == 0  # once a day per filing
    assert AuditEvent.objects.filter(action="filing.reminder").count() == reminded
