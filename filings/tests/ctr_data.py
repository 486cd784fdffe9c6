"""The CTR scenario the golden file and the rule tests are made from (factory data, fixed clock)."""

from datetime import UTC, date, datetime

from filings import services
from filings.models import Filing
from filings.tests.factories import cash, load_cash

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
DAY = date(2026, 11, 20)

CASH = [
    # C-1 deposits at two branches: 10,000.50, two transactions none over 10,000 (aggregated).
    cash("T1", "6000.00", party="C-1", branch="MAIN", account="ACC-1"),
    cash("T2", "4000.50", party="C-1", branch="EAST", account="ACC-1"),
    # C-2 (an entity) deposits 25,000 and withdraws 10,000 EUR (11,000 USD at 1.10): both reported.
    cash("T3", "25000.00", party="C-2", account="ACC-2"),
    cash("T4", "10000.00", party="C-2", direction="out", currency="EUR", account="ACC-2"),
    # C-3 stays under: not reported (unless MULTI_PERSON is added).
    cash("T5", "9999.99", party="C-3", account="ACC-3"),
]
# The golden file adds: C-3 (a courier) deposits 6,000 for C-4 (a business) at the other branch.
# C-3 is then over the threshold (15,999.99 by them), so one CTR lists C-3 twice (50 with
# 9,999.99, 17 with 6,000) and C-4 (23 with 6,000), though C-4 alone is under (CTR FAQ 16).
MULTI_PERSON = [cash("T6", "6000.00", party="C-3", on_behalf_of="C-4", branch="EAST", account="ACC-4")]


def prepare_ctr(tenant, actor, rows=CASH) -> list[Filing]:
    load_cash(tenant, rows)
    services.ctr_prepare(tenant=tenant, actor=actor, first=DAY, now=NOW)
    return list(Filing.objects.filter(tenant=tenant).order_by("subject_key"))
