"""Prometheus metrics of the filings app (never labelled by filing or tenant id)."""

from datetime import date

from django.db.models import Count
from prometheus_client import Gauge

FILINGS_OVERDUE = Gauge(
    "filings_overdue",
    "Filings not yet submitted to FinCEN past their due date, by kind (ctr, sar); set by the deadline task.",
    ["kind"],
    multiprocess_mode="mostrecent",
)


def set_overdue(*, today: date) -> dict[str, int]:
    from filings import selectors
    from filings.models import Filing

    counts = dict.fromkeys(Filing.Kind.values, 0)
    for row in selectors.filings_overdue(today=today).values("kind").annotate(n=Count("id")).order_by():
        counts[row["kind"]] = row["n"]
    for kind, n in counts.items():
        FILINGS_OVERDUE.labels(kind=kind).set(n)
    return counts
