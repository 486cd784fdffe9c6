"""What the admin pages and the API share: reading a report's filters from a request (one input
boundary: a clear 400, never a 500) and answering with HTML, JSON, PDF, CSV or XLSX."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from jfintech.common.errors import ApplicationError
from jfintech.tenancy import calendar
from reporting import exports, reports
from reporting.render import report_pdf

REPORT_KINDS = ("run", "aging", "trends", "inventory", "statement")
EXPORTS = ("html", "json", "pdf", "csv", "xlsx")


def parse_date_or_none(value: str | None) -> date | None:
    try:
        return parse_date(value) if value and len(value) <= 10 else None
    except ValueError:
        return None


def _date(value: str | None, name: str, default: date) -> date:
    if not value:
        return default
    try:  # parse_date raises on a well-formed but impossible date (2026-13-01)
        parsed = parse_date(value) if len(value) <= 10 else None
    except ValueError:
        parsed = None
    if parsed is None or not date(1990, 1, 1) <= parsed <= date(2200, 1, 1):
        raise ApplicationError(f"'{name}' must be a date (YYYY-MM-DD).", code="invalid_report_filter")
    return parsed


def _moment(value: str | None, tenant, default: datetime) -> datetime:
    if not value:
        return default
    try:
        parsed = parse_datetime(value) if len(value) <= 40 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ApplicationError("'at' must be an ISO-8601 date and time.", code="invalid_report_filter")
    if timezone.is_naive(parsed):  # a local time in the tenant's zone
        parsed = parsed.replace(tzinfo=calendar.tenant_zone(tenant))
    return parsed


# The filters each subscribable report takes (strings, as in a query string).
FILTERS = {"aging": ("by",), "trends": ("from", "to"), "inventory": ("at",)}


def parse_filters(kind: str, *, tenant, params, now: datetime) -> dict:
    """The report's keyword arguments from ``params``: each filter parsed, or a 400 naming it."""
    if kind == "aging":
        by = params.get("by") or "break_type"
        if by not in reports.AGING_BY:
            raise ApplicationError(
                f"'by' is one of {', '.join(reports.AGING_BY)}.", code="invalid_report_filter"
            )
        return {"by": by}
    if kind == "trends":
        today = calendar.tenant_today(tenant, now)
        date_to = _date(params.get("to"), "to", today)
        date_from = _date(params.get("from"), "from", date_to - timedelta(days=30))
        if date_from > date_to or (date_to - date_from).days > 366:
            raise ApplicationError(
                "'from' .. 'to' must be ordered and span at most a year.", code="invalid_report_filter"
            )
        return {"date_from": date_from, "date_to": date_to}
    return {"at": _moment(params.get("at"), tenant, now)}


def build(kind: str, *, tenant, params, user, now: datetime | None = None, run_id: int | None = None):
    """The report ``kind`` for ``params`` (a QueryDict or dict of strings)."""
    now = now or timezone.now()
    if kind == "run":
        report = reports.run_report(tenant=tenant, run_id=run_id, user=user, now=now)
        if report is None:
            raise ApplicationError(f"No run {run_id} in this tenant.", code="report_not_found", status=404)
        return report
    if kind in FILTERS:
        builder = {
            "aging": reports.aging_report,
            "trends": reports.trends_report,
            "inventory": reports.inventory_report,
        }[kind]
        return builder(
            tenant=tenant, user=user, now=now, **parse_filters(kind, tenant=tenant, params=params, now=now)
        )
    if kind == "statement":
        definition = params.get("definition") or ""
        if not definition and not params.get("account"):
            return reports.statement_index(tenant=tenant, user=user, now=now)
        account, currency = (params.get("account") or "")[:64], (params.get("currency") or "").upper()[:3]
        if not definition.isdigit() or int(definition) >= 2**63 or not account or len(currency) != 3:
            raise ApplicationError(
                "A statement needs 'definition' (id), 'account' and 'currency'.", code="invalid_report_filter"
            )
        period_end = _date(params.get("to"), "to", calendar.tenant_today(tenant, now))
        report = reports.statement_report(
            tenant=tenant,
            definition_id=int(definition),
            account=account,
            currency=currency,
            period_end=period_end,
            user=user,
            now=now,
        )
        if report is None:
            raise ApplicationError(
                f"No definition {definition} in this tenant.", code="report_not_found", status=404
            )
        return report
    raise ApplicationError(f"No report '{kind}'.", code="report_not_found", status=404)


def export_of(params) -> str:
    export = params.get("export", "html")  # present but blank is refused, not the default
    if export not in EXPORTS:
        raise ApplicationError(f"'export' is one of {', '.join(EXPORTS)}.", code="invalid_report_filter")
    return export


def _filename(report, ext: str) -> str:
    return f"{report.kind}-{report.generated_at:%Y%m%dT%H%M%SZ}.{ext}"


def file_response(report, export: str) -> HttpResponse:
    """PDF of the report, or CSV/XLSX of its main list (the last table: the items it lists)."""
    if export == "pdf":
        response = HttpResponse(report_pdf(report), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{_filename(report, "pdf")}"'
        return response
    table = report.tables[0] if report.kind == "inventory" else report.tables[-1]
    return list_response(
        report.header(), table.columns, table.rows, export, _filename(report, export), report.generated_at
    )


def list_response(meta, columns, rows, export: str, filename: str, created: datetime):
    if export == "csv":
        response = StreamingHttpResponse(
            exports.csv_stream(meta, columns, rows), content_type="text/csv; charset=utf-8"
        )
    elif export == "xlsx":
        response = FileResponse(
            exports.xlsx_file(meta, columns, rows, created=created),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    else:
        raise ApplicationError(f"A list exports as csv or xlsx, not {export}.", code="invalid_report_filter")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def cases_export(*, tenant, params, user, now: datetime | None = None):
    """The break (case) list, streamed from a server-side cursor."""
    now = now or timezone.now()
    export = params.get("export") or "csv"
    status = params.get("status") or None
    definition = params.get("definition") or None
    if definition is not None and (not definition.isdigit() or int(definition) >= 2**63):
        raise ApplicationError("'definition' is a definition id.", code="invalid_report_filter")
    meta = [
        ("Tenant", f"{tenant.name} ({tenant.slug})"),
        ("Filters", f"status={status or 'any'}, definition={definition or 'any'}"),
        ("Generated at", now.isoformat()),
        ("Generated by", reports.who(user)),
        ("Data as of", now.isoformat()),
        ("Amounts", "in the currency's minor units"),
    ]
    rows = exports.case_rows(
        tenant=tenant, status=status, definition_id=int(definition) if definition else None
    )
    return list_response(
        meta, exports.CASE_COLUMNS, rows, export, f"breaks-{now:%Y%m%dT%H%M%SZ}.{export}", now
    )
