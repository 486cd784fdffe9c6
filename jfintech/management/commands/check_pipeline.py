import json
import time

from django.core.management.base import BaseCommand, CommandError

from jfintech.health import services
from jfintech.health.models import PipelineCheck


class Command(BaseCommand):
    help = "Send a chord through every queue and wait for it: proves workers, broker and backend."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=int, default=60)

    def handle(self, *args, timeout, **options):
        check = services.pipeline_check_start(timeout_s=timeout)
        while True:
            check.refresh_from_db()
            if check.status != PipelineCheck.Status.PENDING:
                break
            if check.deadline.timestamp() + 5 < time.time():
                services.pipeline_check_finish(check_id=check.pk, error="no answer before the deadline")
                check.refresh_from_db()
                break
            time.sleep(0.5)
        parts = sorted(check.parts.values_list("queue", flat=True))
        self.stdout.write(json.dumps({"id": check.pk, "status": check.status, "parts": parts,
                                      "trace_id": check.trace_id, "error": check.error}))  # fmt: skip
        if check.status != PipelineCheck.Status.COMPLETED:
            raise CommandError(f"pipeline check {check.pk} {check.status}: {check.error}")
