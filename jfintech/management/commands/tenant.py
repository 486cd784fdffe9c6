"""Create a tenant from the command line, without the admin's forms.

    python manage.py tenant create --slug acme --name "Acme Bank" --timezone Europe/London \\
        [--weekend-days 6,7] [--calendar holidays.txt] [--window-months 24] [--window-months-ahead 3]
    python manage.py tenant list

``--calendar`` is the tenant's holiday calendar as a text file: one ISO date (YYYY-MM-DD) per line,
blank lines and ``#`` comments ignored (a bank's published list, pasted). ``--window-months`` is how
many months back a record's business date may lie and still be accepted at ingestion
(``window_months_back``); ``--window-months-ahead`` how far ahead. The tenant is created by
``tenancy.services.tenant_create`` as the CLI's system actor (naming the OS user), audited.
"""

from datetime import date
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy import services
from jfintech.tenancy.models import Tenant


def read_calendar(path: str) -> list[date]:
    """The holidays of a calendar file; a line that is not a date fails naming its line number."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--calendar: cannot read {path}: {exc.strerror}") from exc
    days = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            days.append(date.fromisoformat(line))
        except ValueError:
            raise CommandError(
                f"--calendar {path}, line {number}: {line!r} is not a date (YYYY-MM-DD)."
            ) from None
    return days


def weekend_days(value: str) -> list[int]:
    try:
        days = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--weekend-days: {value!r} is not a list of ISO weekday numbers (6,7).") from None
    if any(not 1 <= d <= 7 for d in days):
        raise CommandError(f"--weekend-days: {value!r}: ISO weekday numbers are 1 (Monday) to 7 (Sunday).")
    return days


def _window(tenant) -> str:
    return f"window -{tenant.window_months_back}/+{tenant.window_months_ahead} months"


class Command(BaseCommand):
    help = "Create (or list) tenants: tenant create --slug S --name N --timezone TZ [--calendar FILE] ..."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a tenant")
        create.add_argument("--slug", required=True)
        create.add_argument("--name", required=True)
        create.add_argument("--timezone", default="UTC", help="IANA name, e.g. Europe/London (default UTC)")
        create.add_argument(
            "--weekend-days", default="6,7", help="ISO weekday numbers, default 6,7 (Sat, Sun)"
        )
        create.add_argument("--calendar", help="file of holidays, one YYYY-MM-DD per line (# comments)")
        create.add_argument("--window-months", type=int, help="months back a business date is accepted")
        create.add_argument(
            "--window-months-ahead", type=int, help="months ahead a business date is accepted"
        )
        sub.add_parser("list", help="list tenants")

    def handle(self, *args, action, **options):
        if action == "list":
            for t in Tenant.objects.order_by("slug"):
                self.stdout.write(f"{t.slug}\t{t.name}\t{t.timezone}\t{_window(t)}")
            return
        for option in ("window_months", "window_months_ahead"):
            if options[option] is not None and options[option] < 0:
                raise CommandError(f"--{option.replace('_', '-')}: a number of months is 0 or more.")
        try:
            tenant = services.tenant_create(
                actor=Actor.for_cli("tenant"),
                slug=options["slug"],
                name=options["name"],
                timezone_name=options["timezone"],
                weekend_days=weekend_days(options["weekend_days"]),
                holidays=read_calendar(options["calendar"]) if options["calendar"] else None,
                window_months_back=options["window_months"],
                window_months_ahead=options["window_months_ahead"],
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items())
            raise CommandError(f"invalid: {problems}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"tenant {tenant.slug} created ({tenant.name}, {tenant.timezone}, "
                f"weekend {tenant.weekend_days}, {len(tenant.holidays)} holidays, {_window(tenant)})"
            )
        )
