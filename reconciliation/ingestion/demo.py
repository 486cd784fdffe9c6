"""`make demo`: a month of the demo tenant's data up to today, loaded through the real ingestion paths.

Sources (names other demo seeders can rely on): ``fo-trades`` (front-office trades CSV),
``custodian-settlements`` (the custodian's CSV: ; separated, dd/mm/YYYY, decimal commas, D/C
column), ``custody-positions`` (the custodian's end-of-day positions CSV, one set per business day
and one as of today), ``gl-cash`` (general-ledger cash CSV) and ``bank-camt053`` (the bank's
camt.053 statements of the same cash account, one per business day).

The data ends today (the tenant's business days of the last ~30 days, ``demo_days``), so a run
as of today — beat's, or an analyst's "run now" — finds today's positions and trades: it reports
what the data holds, not every holding as a break for want of a position dated today.

Realistic breaks: settlements missing, late, short by a few cents or by a quantity, one the
trades never had; a duplicated settlement row (rejected ``duplicate_key``) and a malformed one;
on the last day (``POSITION_STORY_DAYS_AGO``) two positions that differ from the trades and one the
custodian did not report; bank fees not in the ledger, a ledger entry the bank never booked,
yesterday's first payment posted twice, an amount keyed wrong. Deterministic (seeded), idempotent
(a source that already has a loaded batch is left alone) and quick (~2k rows).
"""

from __future__ import annotations

import random
import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from jfintech.audit import Actor
from jfintech.tenancy.calendar import is_business_day, tenant_today
from jfintech.tenancy.models import Tenant
from reconciliation.ingestion import services
from reconciliation.ingestion.samples import Entry, Statement, camt_chunks
from reconciliation.models import IngestionBatch

ACTOR = Actor.for_system("demo-seed")
ACCOUNT_IBAN = "GB33BUKB20201555555555"
GL_ACCOUNT = "1010-CASH-GBP"
BOOKS = ["EQ-LDN", "EQ-NY", "FI-LDN"]
ISINS = ["GB0002374006", "GB0007980591", "US0378331005", "US5949181045", "DE0007164600", "FR0000120271"]
DAYS_BACK = 30  # calendar days of data before today
# The day the custodian's positions go wrong (business days before the data's last one): the demo's
# securities run as of that day finds the position breaks (reconciliation.runs.demo).
POSITION_STORY_DAYS_AGO = 0

SOURCES = {
    "fo-trades": (
        "trade",
        "csv",
        {
            "columns": {
                "external_id": "trade_id",
                "business_date": "trade_date",
                "value_date": "settle_date",
                "account": "book",
                "instrument": "isin",
                "quantity": "quantity",
                "amount": "consideration",
                "currency": "ccy",
                "counterparty": "broker",
                "version": "version",
            },
            "attributes": ["trader"],
        },
    ),
    "custodian-settlements": (
        "settlement",
        "csv",
        {
            "columns": {
                "external_id": "settlement_ref",
                "business_date": "settled_on",
                "trade_date": "trade_dt",
                "account": "safekeeping_acct",
                "instrument": "isin",
                "quantity": "qty",
                "amount": "cash_amount",
                "currency": "ccy",
                "reference": "client_ref",
            },
            "delimiter": ";",
            "date_format": "%d/%m/%Y",
            "decimal_separator": ",",
            "sign": {"column": "dr_cr", "negative": ["D", "DR"], "positive": ["C", "CR"]},
        },
    ),
    "custody-positions": (
        "position",
        "csv",
        {
            "columns": {
                "external_id": "position_id",
                "business_date": "as_of",
                "account": "account",
                "instrument": "isin",
                "quantity": "quantity",
                "amount": "market_value",
                "currency": "ccy",
            }
        },
    ),
    "gl-cash": (
        "ledger",
        "csv",
        {
            "columns": {
                "external_id": "journal_line",
                "business_date": "posting_date",
                "value_date": "value_date",
                "account": "gl_account",
                "amount": "amount",
                "currency": "ccy",
                "reference": "payment_ref",
                "description": "narrative",
            }
        },
    ),
    "bank-camt053": ("statement", "camt053", {}),
}


def demo_days(tenant) -> tuple[list[date], date]:
    """(the business days the demo data covers, today): those of the last ~30 days up to today."""
    today = tenant_today(tenant)
    span = [today - timedelta(days=i) for i in range(DAYS_BACK, -1, -1)]
    return [d for d in span if is_business_day(tenant, d)], today


def _positions(days: list[date], today: date, trades_by_day: dict) -> str:
    """The custodian's end-of-day positions: each business day's holdings (the trades up to that
    day), and today's when today is not a business day (a run as of today finds them). On the story
    day two holdings are off by 100 and one is not reported: that day's run has its position
    breaks, and the next day balances again (its opening is the custodian's own previous day)."""
    story = days[-1 - POSITION_STORY_DAYS_AGO]
    lines = ["position_id,as_of,account,isin,quantity,market_value,ccy"]
    holdings: dict[tuple[str, str], int] = {}
    for as_of in [*days, *([today] if today != days[-1] else [])]:
        for key, qty in trades_by_day.get(as_of, []):
            holdings[key] = holdings.get(key, 0) + qty
        for i, ((book, isin), qty) in enumerate(sorted(holdings.items())):
            if as_of == story and i % 11 == 7:
                continue  # a position the custodian did not report that day
            if as_of >= story and i % 9 == 4:
                qty += 100  # the custodian booked 100 the trades never had (and keeps them)
            lines.append(f"P-{book}-{isin}-{as_of:%Y%m%d},{as_of},{book},{isin},{qty},{qty * 10:.2f},GBP")
    return "\n".join(lines) + "\n"


def _trades_and_settlements(days: list[date], today: date, rng: random.Random) -> tuple[str, str, str]:
    trades = ["trade_id,trade_date,settle_date,book,isin,quantity,consideration,ccy,broker,version,trader"]
    settlements = [
        "settlement_ref;settled_on;trade_dt;safekeeping_acct;isin;qty;cash_amount;dr_cr;ccy;client_ref"
    ]
    trades_by_day: dict[date, list] = {}
    n = 0
    for day in days:
        for _ in range(rng.randint(20, 30)):
            n += 1
            book, isin = rng.choice(BOOKS), rng.choice(ISINS)
            qty = rng.randint(1, 50) * 100 * rng.choice([1, -1])  # buy > 0, sell < 0
            price = Decimal(rng.randint(500, 50000)) / 100
            cash = -qty * price  # a buy pays cash
            settle = days[min(days.index(day) + 2, len(days) - 1)]
            trade_id = f"TR{day:%m%d}{n:05d}"
            trades.append(
                f"{trade_id},{day},{settle},{book},{isin},{qty},{cash:.2f},GBP,BRK{n % 7},1,trader{n % 5}"
            )
            trades_by_day.setdefault(day, []).append(((book, isin), qty))
            roll = rng.random()
            if roll < 0.03:
                continue  # never settled: missing on the custodian side
            settled_cash = cash - Decimal("0.05") if roll < 0.06 else cash  # a few pence short
            late = min(settle + timedelta(days=3), today)  # never a settlement dated after today
            settled_on = late if roll < 0.08 else settle  # settled late
            # Partly settled: the custodian delivered 100 fewer (a lone 100 lot: 100 more).
            step = 100 if qty > 0 else -100
            settled_qty = (qty - step if abs(qty) > 100 else qty + step) if 0.08 <= roll < 0.09 else qty
            text = f"{abs(settled_cash):.2f}".replace(".", ",")
            settlements.append(
                f"ST{n:06d};{settled_on:%d/%m/%Y};{day:%d/%m/%Y};{book};{isin};{settled_qty};{text};"
                f"{'D' if settled_cash < 0 else 'C'};GBP;{trade_id}"
            )
    settlements.append(settlements[-1])  # the custodian sent one row twice: duplicate_key
    settlements.append(
        f"ST999998;{days[3]:%d/%m/%Y};{days[1]:%d/%m/%Y};EQ-LDN;GB0002374006;100;12,50;C;GBP;UNKNOWN"
    )
    settlements.append(f"ST999999;{days[4]:%d/%m/%Y};;EQ-LDN;GB0002374006;100;twelve;C;GBP;TYPO")  # malformed
    positions = _positions(days, today, trades_by_day)
    return "\n".join(trades) + "\n", "\n".join(settlements) + "\n", positions


def _cash(days: list[date], rng: random.Random) -> tuple[str, list[Statement]]:
    gl = ["journal_line,posting_date,value_date,gl_account,amount,ccy,payment_ref,narrative"]
    statements, opening, line = [], Decimal("250000.00"), 0
    for k, day in enumerate(days):
        entries = []
        for j in range(rng.randint(8, 14)):
            line += 1
            amount = Decimal(rng.randint(-500000, 800000)) / 100
            ref = f"PAY{day:%m%d}{j:03d}"
            entries.append(
                Entry(
                    amount,
                    day,
                    ref=f"B{line:05d}",
                    end_to_end=ref,
                    counterparty=f"Client {line % 23}",
                    description=f"Invoice {line}",
                )
            )
            booked = amount + Decimal("10.00") if line % 37 == 0 else amount  # keyed wrong in the ledger
            gl.append(f"JL{line:06d},{day},{day},{GL_ACCOUNT},{booked:.2f},GBP,{ref},Invoice {line}")
            if k == len(days) - 2 and j == 0:  # yesterday's first payment posted twice: a duplicate
                gl.append(f"JL{line:06d}B,{day},{day},{GL_ACCOUNT},{booked:.2f},GBP,{ref},Invoice {line}")
        if k % 5 == 2:
            entries.append(
                Entry(Decimal("-25.00"), day, ref=f"FEE{day:%m%d}", end_to_end="", description="Bank charges")
            )
        if k % 7 == 3:
            line += 1
            gl.append(
                f"JL{line:06d},{day},{day},{GL_ACCOUNT},-1500.00,GBP,PAYX{k},Payment the bank never booked"
            )
        statement = Statement(
            f"STMT-{day:%Y%m%d}", ACCOUNT_IBAN, "GBP", opening, day, day, lambda e=entries: e, sequence=k + 1
        )
        opening = statement.closing_balance()
        statements.append(statement)
    return "\n".join(gl) + "\n", statements


def seed_ingestion_demo(out) -> None:
    tenant, _ = Tenant.objects.get_or_create(slug="demo", defaults={"name": "Demo Bank"})
    sources = {
        name: services.source_upsert(
            tenant=tenant, actor=ACTOR, name=name, kind=kind, format=fmt, mapping=mapping
        )[0]
        for name, (kind, fmt, mapping) in SOURCES.items()
    }
    days, today = demo_days(tenant)
    first = days[0]
    rng = random.Random(20240131)  # noqa: S311  (deterministic demo data, not security)
    trades, settlements, positions = _trades_and_settlements(days, today, rng)
    gl, statements = _cash(days, rng)
    files = {
        "fo-trades": ("trades.csv", trades),
        "custodian-settlements": ("settlements.csv", settlements),
        "custody-positions": ("positions.csv", positions),
        "gl-cash": ("gl-cash.csv", gl),
        "bank-camt053": ("statements.xml", "".join(camt_chunks(statements, msg_id=f"DEMO-{first:%Y%m}"))),
    }
    with tempfile.TemporaryDirectory(prefix="demo-ingest-") as tmp:
        for name, (file_name, text) in files.items():
            source = sources[name]
            if IngestionBatch.objects.filter(source=source, status=IngestionBatch.Status.LOADED).exists():
                continue  # already seeded: idempotent
            path = Path(tmp) / f"{first:%Y-%m}-{file_name}"
            path.write_text(text)
            batch = services.batch_ingest_file(tenant=tenant, actor=ACTOR, source=source, path=path)
            out.write(
                f"demo data: {name}: batch {batch.pk} {batch.status}, {batch.rows_accepted} rows loaded, "
                f"{batch.rows_rejected} rejected"
            )
