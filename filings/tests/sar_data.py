"""The SAR scenario the golden file and the SAR rule tests are made from (factory data, fixed clock):
C-3, a courier, deposits cash just under the CTR threshold into Acme Hardware's account ACC-7 at
two branches; reconciliation breaks on ACC-7 are referred to compliance, who complete the draft."""

from datetime import date
from decimal import Decimal

from exceptions.models import Case
from filings import sar
from filings.models import Filing
from filings.tests.ctr_data import NOW
from filings.tests.factories import cash, load_cash
from filings.tests.test_workflow import _open_break

__all__ = ["NARRATIVE", "NOW", "prepare_sar"]

CASH = [
    cash("S1", "9500.00", party="C-3", on_behalf_of="C-2", day="2026-11-18", account="ACC-7"),
    cash("S2", "9000.50", party="C-3", on_behalf_of="C-2", day="2026-11-19", branch="EAST", account="ACC-7"),
    cash("S3", "1000.00", party="C-2", day="2026-11-20", account="ACC-7"),
]
NARRATIVE = (
    "Between 2026-11-18 and 2026-11-19 Mary Roe deposited cash of USD 9,500.00 and USD 9,000.50 "
    "into the account ACC-7 of Acme Hardware LLC at two branches, each just under the CTR threshold."
)


def prepare_sar(tenant, actor) -> Filing:
    """A complete SAR draft: referred from two break cases on ACC-7, then edited by compliance."""
    load_cash(tenant, CASH)
    _open_break(tenant, "ACC-7", "9000.00")
    _open_break(tenant, "ACC-7", "-1000.00")
    ids = list(Case.objects.filter(tenant=tenant, account="ACC-7").values_list("pk", flat=True))
    filing = sar.sar_refer(tenant=tenant, actor=actor, case_ids=ids, detected_on=date(2026, 11, 21), now=NOW)
    return sar.sar_update(
        tenant=tenant,
        actor=actor,
        filing_id=filing.pk,
        narrative=NARRATIVE,
        activity_subtypes=["114", "807"],
        amount_involved=Decimal("18500.50"),
        period_start=date(2026, 11, 18),
        period_end=date(2026, 11, 19),
    )
