from django.conf import settings
from django.db import models


class PipelineCheck(models.Model):
    """A deep health check: a chord with one probe task per queue and a completing callback.

    Proves, from the outside, that web, broker, every queue's workers, the result backend and
    trace propagation work end to end. Started from the API or ``manage.py check_pipeline``.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deadline = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "deadline"])]

    def __str__(self):
        return f"pipeline check {self.pk} ({self.status})"


class PipelineCheckPart(models.Model):
    """One probe's proof of life; unique per check and queue, so a redelivered probe adds nothing."""

    check_run = models.ForeignKey(PipelineCheck, related_name="parts", on_delete=models.CASCADE)
    queue = models.CharField(max_length=32)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    completed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["check_run", "queue"], name="uniq_pipeline_check_part")
        ]

    def __str__(self):
        return f"{self.queue} probe of check {self.check_run_id}"
