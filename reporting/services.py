"""The only writes of reporting: storing a generated artifact (immutable) with its audit event."""

from __future__ import annotations

import hashlib

import structlog
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from jfintech import audit
from jfintech.common.errors import ApplicationError
from jfintech.observability.tracing import current_trace_id
from jfintech.tenancy import permissions
from reporting.models import ExportJob, ReportArtifact, ReportDelivery, ReportSubscription
from reporting.reports import GENERATOR_VERSION

log = structlog.get_logger(__name__)


def artifact_store(
    *,
    tenant,
    actor,
    kind: str,
    fmt: str,
    filename: str,
    content: bytes,
    filters: dict,
    inputs_as_of,
    generated_at,
    generated_by: str,
) -> ReportArtifact:
    """Store ``content`` once (idempotent: the same bytes of the same kind are the same artifact)."""
    permissions.require(tenant=tenant, actor=actor, area="report", verb="generate")
    digest = hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        existing = ReportArtifact.objects.filter(tenant=tenant, kind=kind, sha256=digest).first()
        if existing is not None:
            return existing
        artifact = ReportArtifact(
            tenant=tenant,
            kind=kind,
            format=fmt,
            filename=filename,
            content=content,
            sha256=digest,
            size=len(content),
            generator_version=GENERATOR_VERSION,
            filters=filters,
            inputs_as_of=inputs_as_of,
            generated_at=generated_at,
            generated_by=generated_by,
        )
        artifact.full_clean(exclude=["tenant", "content"])
        artifact.save()
        audit.record(
            tenant=tenant,
            actor=actor,
            action="report.artifact_generated",
            obj=artifact,
            after={
                "kind": kind,
                "filename": filename,
                "sha256": digest,
                "size": len(content),
                "filters": filters,
            },
        )
    log.info(
        "report_artifact_generated", kind=kind, sha256=digest, size=len(content), artifact_id=artifact.pk
    )
    return artifact


# --- Subscriptions and scheduled delivery -------------------------------------------------------

SUBSCRIBABLE = ("aging", "trends", "inventory")
DELIVERY_TASK = "reporting.generate_subscription"
DELIVERY_BACKOFF_S = 60.0  # first retry after ~1 min, then 2, 4, … (reporting.tasks.deliver_report)
DELIVERY_MAX_ATTEMPTS = 6


SUBSCRIPTION_FORMATS = ("pdf", "csv", "xlsx")
MAX_RECIPIENTS = 50


def subscription_validate(
    *,
    tenant,
    kind: str,
    filters: dict | None,
    fmt: str,
    recipients,
    webhook: bool,
    cron: str,
    expire_seconds: int | None,
    require_webhook: bool = False,
) -> tuple[dict, list[str], dict]:
    """Whether a subscription holds, as the admin form and the API ask before saving (and the save
    itself). Returns (filters, recipients, crontab fields), or raises a 400 naming the part.

    ``require_webhook``: the surfaces people use refuse ``webhook`` when the tenant has no active
    webhook to send to; the demo subscribes ahead of one on purpose (its delivery fails loudly)."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email
    from django_celery_beat.validators import crontab_validator

    from exceptions import selectors as desk_selectors
    from reporting import surfaces

    if kind not in SUBSCRIBABLE:
        raise ApplicationError(f"kind is one of {', '.join(SUBSCRIBABLE)}.", code="invalid_report_filter")
    if fmt not in SUBSCRIPTION_FORMATS:
        raise ApplicationError("format is pdf, csv or xlsx.", code="invalid_report_filter")
    if not isinstance(filters or {}, dict):
        raise ApplicationError("filters is an object of the report's filters.", code="invalid_report_filter")
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(surfaces.FILTERS[kind]))
    if unknown or not all(isinstance(v, str) for v in filters.values()):
        raise ApplicationError(
            f"The {kind} report takes the filters {', '.join(surfaces.FILTERS[kind])} (strings)"
            + (f"; not {', '.join(unknown)}." if unknown else "."),
            code="invalid_report_filter",
        )
    surfaces.parse_filters(kind, tenant=tenant, params=filters, now=timezone.now())
    recipients = list(dict.fromkeys(r.strip() for r in recipients or () if r.strip()))
    if len(recipients) > MAX_RECIPIENTS:
        raise ApplicationError(f"At most {MAX_RECIPIENTS} recipients.", code="invalid_recipient")
    for address in recipients:
        try:
            validate_email(address)
        except ValidationError:
            raise ApplicationError(
                f"'{address[:200]}' is not an email address.", code="invalid_recipient"
            ) from None
    if not recipients and not webhook:
        raise ApplicationError("Name recipients, the webhook, or both.", code="invalid_report_filter")
    if webhook and require_webhook and not desk_selectors.sla_webhook_is_active(tenant=tenant):
        raise ApplicationError(
            "The tenant has no active webhook (set it up under SLA webhooks first).",
            code="webhook_not_configured",
        )
    parts = (cron or "").split()
    try:
        if len(parts) != 5:
            raise ValidationError("five fields")
        crontab_validator(" ".join(parts))
    except ValidationError as exc:
        raise ApplicationError(
            f"cron: five fields, e.g. '0 7 * * 1-5' ({'; '.join(exc.messages)}).", code="invalid_cron"
        ) from None
    if expire_seconds is None or not 1 <= expire_seconds <= 7 * 86400:
        raise ApplicationError("expire_seconds is from 1 to 604800 (a week).", code="invalid_expire_seconds")
    crontab = dict(
        zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts, strict=True)
    )
    return filters, recipients, crontab


def subscription_save(
    *,
    tenant,
    actor,
    name: str,
    kind: str,
    filters: dict | None = None,
    fmt: str = "pdf",
    recipients: list[str] = (),
    webhook: bool = False,
    cron: str,
    expire_seconds: int = 3600,
    is_active: bool = True,
    new: bool = False,
    require_webhook: bool = False,
) -> ReportSubscription:
    """Create or change (by name) a subscription and its beat entry: a crontab in the tenant's zone
    with ``expire_seconds`` (a missed tick is dropped, never run late; never ``expires``), enabled
    while the subscription is active. ``new``: refuse (409) a name the tenant already has."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    with transaction.atomic():
        sub = (
            ReportSubscription.objects.select_for_update(of=("self",))
            .select_related("schedule")
            .filter(tenant=tenant, name=name)
            .first()
        )
        permissions.require(
            tenant=tenant, actor=actor, area="report_subscription", verb="add" if sub is None else "change"
        )
        if sub is not None and new:
            raise ApplicationError(
                f"The tenant has a subscription named '{name}'.", code="subscription_exists", status=409
            )
        filters, recipients, fields = subscription_validate(
            tenant=tenant,
            kind=kind,
            filters=filters,
            fmt=fmt,
            recipients=recipients,
            webhook=webhook,
            cron=cron,
            expire_seconds=expire_seconds,
            require_webhook=require_webhook,
        )
        before = None if sub is None else subscription_snapshot(sub)
        sub = sub or ReportSubscription(tenant=tenant, name=name, created_by=actor.display)
        sub.kind, sub.filters, sub.format = kind, filters, fmt
        sub.recipients, sub.webhook, sub.is_active = recipients, webhook, is_active
        sub.full_clean(exclude=["tenant", "schedule"])
        try:
            with transaction.atomic():  # a concurrent create of the same name: a 409, not a 500
                sub.save()
        except IntegrityError:
            raise ApplicationError(
                f"The tenant has a subscription named '{name}'.", code="subscription_exists", status=409
            ) from None
        fields["timezone"] = tenant.timezone or "UTC"
        crontab = CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(**fields)
        task = sub.schedule or PeriodicTask(name=f"report {tenant.slug}/{name}")
        task.task, task.crontab, task.interval = DELIVERY_TASK, crontab, None
        task.kwargs = f'{{"subscription_id": {sub.pk}}}'
        task.queue, task.expire_seconds, task.expires = "default", expire_seconds, None
        task.enabled = is_active  # beat skips an inactive subscription's ticks
        task.description = f"Generates and delivers report subscription {sub.pk} ({name})."
        task.full_clean()
        task.save()
        sub.schedule = task
        sub.save(update_fields=["schedule"])
        audit.record(
            tenant=tenant,
            actor=actor,
            action="report.subscription_saved",
            obj=sub,
            before=before,
            after=subscription_snapshot(sub),
        )
    return sub


def subscription_deactivate(*, tenant, actor, subscription: ReportSubscription) -> ReportSubscription:
    """Stop a subscription: inactive, its beat entry disabled (kept, so its schedule can be seen and
    the subscription saved active again). Its deliveries stay in the log. Idempotent."""
    with transaction.atomic():
        sub = (
            ReportSubscription.objects.select_for_update(of=("self",))
            .select_related("schedule")
            .get(tenant=tenant, pk=subscription.pk)
        )
        permissions.require(tenant=tenant, actor=actor, area="report_subscription", verb="change")
        if not sub.is_active:
            return sub
        before = subscription_snapshot(sub)
        sub.is_active = False
        sub.save(update_fields=["is_active", "updated_at"])
        if sub.schedule is not None:
            sub.schedule.enabled = False
            sub.schedule.save(update_fields=["enabled"])
        audit.record(
            tenant=tenant,
            actor=actor,
            action="report.subscription_deactivated",
            obj=sub,
            before=before,
            after=subscription_snapshot(sub),
        )
    return sub


def subscription_cron(sub) -> str | None:
    """The subscription's schedule as the five cron fields it was saved with (tenant's zone)."""
    c = sub.schedule.crontab if sub.schedule is not None and sub.schedule.crontab_id else None
    return None if c is None else f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


def subscription_snapshot(sub) -> dict:
    return {
        "name": sub.name,
        "kind": sub.kind,
        "filters": sub.filters,
        "format": sub.format,
        "recipients": list(sub.recipients),
        "webhook": sub.webhook,
        "is_active": sub.is_active,
        "cron": subscription_cron(sub),
        "expire_seconds": sub.schedule.expire_seconds if sub.schedule is not None else None,
    }


def _render(report, fmt: str) -> bytes:
    from reporting import exports
    from reporting.render import report_pdf

    if fmt == "pdf":
        return report_pdf(report)
    table = report.tables[0] if report.kind == "inventory" else report.tables[-1]
    if fmt == "csv":
        return b"".join(exports.csv_stream(report.header(), table.columns, table.rows))
    with exports.xlsx_file(report.header(), table.columns, table.rows, created=report.generated_at) as f:
        return f.read()


def subscription_generate(*, subscription_id: int, scheduled_for, now=None) -> list[int]:
    """Generate the subscription's report for the tick ``scheduled_for`` (an aware minute), store it
    as an artifact and queue one delivery per channel. Idempotent per tick: a redelivered beat
    message finds its deliveries and queues nothing new. Returns the new deliveries' ids."""
    from reporting import surfaces, tasks

    now = now or timezone.now()
    sub = (
        ReportSubscription.objects.select_related("tenant").filter(pk=subscription_id, is_active=True).first()
    )
    if sub is None:
        log.warning("report_subscription_gone", subscription_id=subscription_id)
        return []
    if ReportDelivery.objects.filter(subscription=sub, scheduled_for=scheduled_for).exists():
        return []
    actor = audit.Actor.for_system("report-subscription")
    report = surfaces.build(
        sub.kind, tenant=sub.tenant, params=sub.filters, user=f"subscription {sub.name}", now=now
    )
    content = _render(report, sub.format)
    trace_id = current_trace_id()
    with transaction.atomic():
        artifact = artifact_store(
            tenant=sub.tenant,
            actor=actor,
            kind=f"{sub.kind}-{sub.format}",
            fmt=sub.format,
            filename=f"{sub.name}-{now:%Y%m%dT%H%M%SZ}.{sub.format}",
            content=content,
            filters={"subscription": sub.name, **sub.filters},
            inputs_as_of=report.data_as_of,
            generated_at=now,
            generated_by=f"subscription {sub.name}",
        )
        channels = (["email"] if sub.recipients else []) + (["webhook"] if sub.webhook else [])
        deliveries = [
            ReportDelivery.objects.create(
                tenant=sub.tenant,
                subscription=sub,
                artifact=artifact,
                channel=c,
                scheduled_for=scheduled_for,
                trace_id=trace_id,
            )
            for c in channels
        ]
        for d in deliveries:
            transaction.on_commit(
                lambda d=d.pk: tasks.deliver_report.delay(d, DELIVERY_BACKOFF_S, DELIVERY_MAX_ATTEMPTS)
            )
    return [d.pk for d in deliveries]


class DeliveryNotMade(Exception):
    """A delivery attempt failed; the task retries it with backoff."""


def delivery_send(*, delivery_id: int, final_attempt: bool, max_attempts: int | None = None) -> bool:
    """Send one delivery once. Email: Django's backend, the artifact attached. Webhook: handed to
    the desk's signed-webhook outbox (exceptions.services.webhook_enqueue: HMAC, retries, log).
    A failure raises DeliveryNotMade (retried); the final one is loud: metric, error log with the
    trace id, the delivery FAILED and a case on the desk."""
    from django.conf import settings
    from django.core.mail import EmailMessage

    from exceptions import services as desk
    from reporting.metrics import REPORT_DELIVERIES

    delivery = (
        ReportDelivery.objects.select_related("subscription", "artifact", "tenant")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status != ReportDelivery.Status.PENDING:
        return True
    # The attempts made count, not the message's retry number: a retry message the broker delivered
    # twice must not buy an attempt beyond the limit.
    if max_attempts is not None and delivery.attempts + 1 >= max_attempts:
        final_attempt = True
    sub, artifact = delivery.subscription, delivery.artifact
    error, handed = "", None
    try:
        if delivery.channel == "email":
            message = EmailMessage(
                subject=f"[{delivery.tenant.slug}] {sub.name}: {artifact.filename}",
                body=(
                    f"Report '{sub.name}' ({sub.kind}) for {delivery.tenant.name}, generated "
                    f"{artifact.generated_at.isoformat()}, data as of {artifact.inputs_as_of.isoformat()}.\n"
                    f"SHA-256 {artifact.sha256}, {artifact.size} bytes, {artifact.generator_version}.\n"
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=list(sub.recipients),
            )
            message.attach(artifact.filename, bytes(artifact.content))
            message.send(fail_silently=False)
        else:
            with transaction.atomic():
                handed = desk.webhook_enqueue(
                    tenant=delivery.tenant,
                    event="report.generated",
                    payload={
                        "event": "report.generated",
                        "tenant": delivery.tenant.slug,
                        "subscription": sub.name,
                        "artifact_id": artifact.pk,
                        "filename": artifact.filename,
                        "sha256": artifact.sha256,
                        "size": artifact.size,
                        "generated_at": artifact.generated_at.isoformat(),
                    },
                )
            if handed is None:
                error = "the tenant has no active webhook"
    except Exception as exc:  # any transport error is a failed attempt, retried
        error = f"{type(exc).__name__}: {exc}"[:1000]
    updates = {"attempts": models.F("attempts") + 1, "last_error": error}
    if not error:
        status = ReportDelivery.Status.HANDED_OFF if handed else ReportDelivery.Status.DELIVERED
        updates.update(
            status=status, delivered_at=timezone.now(), webhook_delivery_id=getattr(handed, "pk", None)
        )
    elif final_attempt:
        updates.update(status=ReportDelivery.Status.FAILED)
    outcome = "delivered" if not error else ("failed" if final_attempt else "retry")
    REPORT_DELIVERIES.labels(channel=delivery.channel, outcome=outcome).inc()
    if not error:
        ReportDelivery.objects.filter(pk=delivery.pk, status=ReportDelivery.Status.PENDING).update(**updates)
        log.info(
            "report_delivered",
            delivery_id=delivery.pk,
            channel=delivery.channel,
            attempt=delivery.attempts + 1,
        )
        return True
    fields = dict(
        delivery_id=delivery.pk,
        channel=delivery.channel,
        subscription=sub.name,
        error=error,
        attempt=delivery.attempts + 1,
        report_trace_id=delivery.trace_id,
    )
    if not final_attempt:
        ReportDelivery.objects.filter(pk=delivery.pk, status=ReportDelivery.Status.PENDING).update(**updates)
        log.warning("report_delivery_retry", **fields)
        raise DeliveryNotMade(error)
    _fail_loudly(delivery, f"after {delivery.attempts + 1} attempt(s): {error}", updates, fields)
    return False


def _fail_loudly(delivery, error: str, updates: dict, fields: dict) -> None:
    """The end of a delivery that will not be made: FAILED with a case on the desk, in one
    transaction, then the error log (the metric is counted by the caller, with its outcome)."""
    from exceptions import services as desk

    with transaction.atomic():
        case = desk.case_open_for_failed_delivery(
            tenant=delivery.tenant,
            subscription_id=delivery.subscription.pk,
            subscription_name=delivery.subscription.name,
            delivery_id=delivery.pk,
            error=f"{delivery.channel} delivery of {delivery.artifact.filename} failed {error}",
            trace_id=delivery.trace_id,
            actor=audit.Actor.for_system("report-subscription"),
        )
        updates.update(status=ReportDelivery.Status.FAILED, case_id=case.pk)
        ReportDelivery.objects.filter(pk=delivery.pk, status=delivery.status).update(**updates)
    log.error("report_delivery_failed", case_id=case.pk, **fields)


def delivery_failed_downstream(*, webhook_delivery_id: int, error: str) -> bool:
    """A report handed to the desk's webhook outbox whose POST the outbox finally gave up on: the
    report delivery becomes FAILED with its desk case, as a failed email does. False when the
    webhook was not a report's (an SLA alert) or the delivery was already settled."""
    from reporting.metrics import REPORT_DELIVERIES

    delivery = (
        ReportDelivery.objects.select_related("subscription", "artifact", "tenant")
        .filter(webhook_delivery_id=webhook_delivery_id, status=ReportDelivery.Status.HANDED_OFF)
        .first()
    )
    if delivery is None:
        return False
    REPORT_DELIVERIES.labels(channel=delivery.channel, outcome="failed").inc()
    fields = dict(
        delivery_id=delivery.pk,
        channel=delivery.channel,
        subscription=delivery.subscription.name,
        error=error,
        webhook_delivery_id=webhook_delivery_id,
        report_trace_id=delivery.trace_id,
    )
    _fail_loudly(delivery, f"in the desk's webhook outbox: {error}", {"last_error": error}, fields)
    return True


def pack_generate(*, tenant, actor, user, definition, date_from, date_to, now=None) -> ReportArtifact:
    """Build the auditor pack of ``definition`` for [date_from, date_to] and store it (approver or
    admin: the pack is signed with the audit chain)."""
    from reporting import packs

    permissions.require(tenant=tenant, actor=actor, area="report", verb="pack")
    if date_from > date_to or (date_to - date_from).days > 366:
        raise ApplicationError("The period must be ordered and at most a year.", code="invalid_report_filter")
    now = now or timezone.now()
    data = packs.build_pack(
        tenant=tenant, definition=definition, date_from=date_from, date_to=date_to, user=user, now=now
    )
    return artifact_store(
        tenant=tenant,
        actor=actor,
        kind="auditor_pack",
        fmt="zip",
        filename=f"auditor-pack-{definition.name}-{date_from}-{date_to}.zip",
        content=data,
        filters={"definition": definition.name, "from": str(date_from), "to": str(date_to)},
        inputs_as_of=now,
        generated_at=now,
        generated_by=getattr(user, "username", "") or actor.display,
    )


# --- Large exports as a task with progress ------------------------------------------------------

EXPORT_PROGRESS_EVERY = 10_000  # rows between progress updates (one UPDATE each)


def export_job_start(*, tenant, actor, user, fmt: str, filters: dict) -> ExportJob:
    """Queue an export of the break list; the task streams it into a large object."""
    from reporting import tasks

    permissions.require(tenant=tenant, actor=actor, area="report", verb="generate")
    if fmt not in ("csv", "xlsx"):
        raise ApplicationError("An export is csv or xlsx.", code="invalid_report_filter")
    status, definition = filters.get("status") or "", str(filters.get("definition") or "")
    if definition and (not definition.isdigit() or int(definition) >= 2**63):
        raise ApplicationError("'definition' is a definition id.", code="invalid_report_filter")
    with transaction.atomic():
        job = ExportJob.objects.create(
            tenant=tenant,
            format=fmt,
            filters={"status": status[:20], "definition": definition},
            requested_by=getattr(user, "username", "") or actor.display,
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="report.export_requested",
            obj=job,
            after={"format": fmt, "filters": job.filters},
        )
        transaction.on_commit(lambda: tasks.run_export.delay(job.pk))
    return job


def export_job_run(*, job_id: int, now=None) -> ExportJob | None:
    """Run one export job: rows from a server-side cursor into a temporary file (CSV chunks, or
    XLSX in constant memory), progress every EXPORT_PROGRESS_EVERY rows, then the file into a large
    object and an immutable artifact, in one transaction. A redelivered task restarts the job."""
    import tempfile

    from exceptions import selectors as case_selectors
    from reporting import exports, storage

    now = now or timezone.now()
    claimed = ExportJob.objects.filter(
        pk=job_id, status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING]
    )
    if not claimed.update(status=ExportJob.Status.RUNNING, started_at=now, rows_done=0):
        return None
    job = ExportJob.objects.select_related("tenant").get(pk=job_id)
    tenant, definition = job.tenant, job.filters.get("definition") or None
    try:
        status = job.filters.get("status") or None
        total = case_selectors.case_export_rows(
            tenant=tenant, status=status, definition_id=int(definition) if definition else None
        ).count()
        ExportJob.objects.filter(pk=job.pk).update(rows_total=total)
        done = [0]

        def rows():
            for row in exports.case_rows(
                tenant=tenant, status=status, definition_id=int(definition) if definition else None
            ):
                done[0] += 1
                if done[0] % EXPORT_PROGRESS_EVERY == 0:
                    ExportJob.objects.filter(pk=job.pk).update(rows_done=done[0])
                yield row

        meta = [
            ("Tenant", f"{tenant.name} ({tenant.slug})"),
            ("Filters", f"status={status or 'any'}, definition={definition or 'any'}"),
            ("Generated at", now.isoformat()),
            ("Generated by", job.requested_by),
            ("Data as of", now.isoformat()),
            ("Amounts", "in the currency's minor units"),
        ]
        if job.format == "csv":
            out = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
            for chunk in exports.csv_stream(meta, exports.CASE_COLUMNS, rows()):
                out.write(chunk)
            out.seek(0)
        else:
            out = exports.xlsx_file(meta, exports.CASE_COLUMNS, rows(), created=now)
        with out, transaction.atomic():
            oid, digest, size = storage.lo_write(out)
            artifact = ReportArtifact.objects.create(
                tenant=tenant,
                kind=f"breaks-{job.format}",
                format=job.format,
                filename=f"breaks-{now:%Y%m%dT%H%M%SZ}.{job.format}",
                large_object=oid,
                sha256=digest,
                size=size,
                generator_version=GENERATOR_VERSION,
                filters=job.filters,
                inputs_as_of=now,
                generated_at=now,
                generated_by=job.requested_by,
            )
            audit.record(
                tenant=tenant,
                actor=audit.Actor.for_system("report-export"),
                action="report.artifact_generated",
                obj=artifact,
                after={"kind": artifact.kind, "sha256": digest, "size": size, "export_job": job.pk},
            )
            ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.RUNNING).update(
                status=ExportJob.Status.DONE, rows_done=done[0], artifact=artifact, finished_at=timezone.now()
            )
    except Exception as exc:
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        log.error("report_export_failed", export_job=job.pk, error=str(exc)[:500])
        raise
    log.info("report_export_done", export_job=job.pk, rows=done[0], size=size, sha256=digest)
    return ExportJob.objects.get(pk=job.pk)
