"""`make demo`: a month of the demo tenant's data up to today, loaded through the real ingestion paths.

Sources (names other demo seeders can rely on): ``fo-trades`` (front-office trades CSV: unsigned
quantity and consideration, signed by its ``side`` column, ``mapping.signs``),
``custodian-settlements`` (the custodian's CSV: ; separated, dd/mm/YYYY, decimal commas, D/C
column), ``custody-positions`` (the custodian's end-of-day positions CSV, one set per business day
and one as of today; no row id: keyed by (account, isin, as_of), a composite natural key),
``gl-cash`` (general-ledger cash CSV), ``bank-camt054`` (the bank's intraday camt.054
notifications of the same cash account: each day's first bookings) and ``bank-camt053`` (its
camt.053 statements, one per business day, re-reporting the notifications: ``re_reports``, the
statement's copies stored ``linked``). Both bank sources derive the reference with
``reference_extractors``: the end-to-end id, else the invoice number in the remittance text (half
the receipts say NOTPROVIDED), else the bank's own reference.

The data ends today (the tenant's business days of the last ~30 days, ``demo_days``), so a run
as of today — beat's, or an analyst's "run now" — finds today's positions and trades: it reports
what the data holds, not every holding as a break for want of a position dated today.

Realistic breaks: settlements missing, late, short by a few cents or by a quantity, one the
trades never had; a duplicated settlement row (rejected ``duplicate_key``) and a malformed one;
on the last day (``POSITION_STORY_DAYS_AGO``) two positions that differ from the trades and one the
custodian did not report; a trade settled in two halves a day apart and one whose second half
settled three business days late (``_split_settlements``); bank fees not in the ledger, a ledger
entry the bank never booked, yesterday's first payment posted twice, an amount keyed wrong.
Deterministic (seeded), idempotent (a source that already has a loaded batch is left alone) and
quick (~2k rows).
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
INVOICE = r"(?P<ref>INV-\d{4}-\d{5})"
BANK_EXTRACTORS = [
    {"field": "end_to_end_id"},
    {"field": "remittance", "regex": INVOICE},
    {"field": "account_servicer_ref"},  # the bank's own (its fees): a last resort
]
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
            # Unsigned numbers and a side: a sell delivers shares, a buy pays cash.
            "signs": {
                "quantity": {"sign_by": "side", "negative_when": ["SELL"], "positive_when": ["BUY"]},
                "amount": {"sign_by": "side", "negative_when": ["BUY"], "positive_when": ["SELL"]},
            },
            "attributes": ["trader", "side"],
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
                "external_id": ["account", "isin", "as_of"],  # no row id: the natural key
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
    # The bank notifies some bookings intraday (camt.054) and re-reports every booking in the
    # end-of-day camt.053 (RE_REPORTS): an entry both carry is one active record, its statement copy
    # stored `linked`. Payers quote the invoice as end-to-end id or, about half of them, say
    # NOTPROVIDED and write it in the remittance text: the extractors find it there.
    "bank-camt054": ("statement", "camt054", {"reference_extractors": BANK_EXTRACTORS}),
    "bank-camt053": ("statement", "camt053", {"reference_extractors": BANK_EXTRACTORS}),
}
RE_REPORTS = {"bank-camt053": "bank-camt054"}


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
    lines = ["as_of,account,isin,quantity,market_value,ccy"]  # keyed by (account, isin, as_of)
    holdings: dict[tuple[str, str], int] = {}
    for as_of in [*days, *([today] if today != days[-1] else [])]:
        for key, qty in trades_by_day.get(as_of, []):
            holdings[key] = holdings.get(key, 0) + qty
        for i, ((book, isin), qty) in enumerate(sorted(holdings.items())):
            if as_of == story and i % 11 == 7:
                continue  # a position the custodian did not report that day
            if as_of >= story and i % 9 == 4:
                qty += 100  # the custodian booked 100 the trades never had (and keeps them)
            lines.append(f"{as_of},{book},{isin},{qty},{qty * 10:.2f},GBP")
    return "\n".join(lines) + "\n"


def _split_settlements(days: list[date]) -> dict[date, date]:
    """Trade days whose first trade the custodian settled in two halves -> the second half's date
    (the first half settles on the settlement date): for one trade the calendar day after it (within
    the two days of securities-3way's aggregate pass: matched 1:N), for the next day's three business
    days after it (the late partial the pass's date condition refuses: a break). Some two weeks
    back, so every demo run sees both halves."""
    i = next(i for i in range(len(days) - 15, len(days) - 8) if (days[i + 3] - days[i + 2]).days == 1)
    return {days[i]: days[i + 3], days[i + 1]: days[i + 6]}


def _settlement(ref: str, settled_on: date, trade_day: date, book, isin, qty, cash: Decimal, trade_id) -> str:
    """The custodian's row: dd/mm/YYYY dates, an unsigned decimal-comma amount and its D/C."""
    text = f"{abs(cash):.2f}".replace(".", ",")
    return (
        f"{ref};{settled_on:%d/%m/%Y};{trade_day:%d/%m/%Y};{book};{isin};{qty};{text};"
        f"{'D' if cash < 0 else 'C'};GBP;{trade_id}"
    )


def _trades_and_settlements(days: list[date], today: date, rng: random.Random) -> tuple[str, str, str]:
    trades = [
        "trade_id,trade_date,settle_date,book,isin,side,quantity,consideration,ccy,broker,version,trader"
    ]
    settlements = [
        "settlement_ref;settled_on;trade_dt;safekeeping_acct;isin;qty;cash_amount;dr_cr;ccy;client_ref"
    ]
    split = _split_settlements(days)
    trades_by_day: dict[date, list] = {}
    n = 0
    for day in days:
        for t in range(rng.randint(20, 30)):
            n += 1
            book, isin = rng.choice(BOOKS), rng.choice(ISINS)
            qty = rng.randint(1, 50) * 100 * rng.choice([1, -1])  # buy > 0, sell < 0
            price = Decimal(rng.randint(500, 50000)) / 100
            cash = -qty * price  # a buy pays cash
            settle = days[min(days.index(day) + 2, len(days) - 1)]
            trade_id = f"TR{day:%m%d}{n:05d}"
            side = "BUY" if qty > 0 else "SELL"  # the file's numbers are unsigned: the side signs them
            trades.append(
                f"{trade_id},{day},{settle},{book},{isin},{side},{abs(qty)},{abs(cash):.2f},GBP,BRK{n % 7},1,"
                f"trader{n % 5}"
            )
            trades_by_day.setdefault(day, []).append(((book, isin), qty))
            roll = rng.random()
            if t == 0 and day in split:  # settled in two halves
                first = qty // 2
                for suffix, settled_on, part in (("A", settle, first), ("B", split[day], qty - first)):
                    row = _settlement(
                        f"ST{n:06d}{suffix}", settled_on, day, book, isin, part, -part * price, trade_id
                    )
                    settlements.append(row)
                continue
            if roll < 0.03:
                continue  # never settled: missing on the custodian side
            settled_cash = cash - Decimal("0.05") if roll < 0.06 else cash  # a few pence short
            late = min(settle + timedelta(days=3), today)  # never a settlement dated after today
            settled_on = late if roll < 0.08 else settle  # settled late
            # Partly settled: the custodian delivered 100 fewer (a lone 100 lot: 100 more).
            step = 100 if qty > 0 else -100
            settled_qty = (qty - step if abs(qty) > 100 else qty + step) if 0.08 <= roll < 0.09 else qty
            settlements.append(
                _settlement(f"ST{n:06d}", settled_on, day, book, isin, settled_qty, settled_cash, trade_id)
            )
    settlements.append(settlements[-1])  # the custodian sent one row twice: duplicate_key
    settlements.append(
        f"ST999998;{days[3]:%d/%m/%Y};{days[1]:%d/%m/%Y};EQ-LDN;GB0002374006;100;12,50;C;GBP;UNKNOWN"
    )
    settlements.append(f"ST999999;{days[4]:%d/%m/%Y};;EQ-LDN;GB0002374006;100;twelve;C;GBP;TYPO")  # malformed
    positions = _positions(days, today, trades_by_day)
    return "\n".join(trades) + "\n", "\n".join(settlements) + "\n", positions


def _cash(days: list[date], rng: random.Random) -> tuple[str, list[Statement], list[Statement]]:
    """The ledger's cash account, the bank's end-of-day statements and its intraday notifications
    (each day's first bookings, re-reported by the statement). A receipt pays an invoice the ledger
    knows by number: every other payer quotes it as end-to-end id, the rest say NOTPROVIDED and
    write it in the remittance text; our own payments carry our payment reference."""
    gl = ["journal_line,posting_date,value_date,gl_account,amount,ccy,payment_ref,narrative"]
    statements, notifications, opening, line = [], [], Decimal("250000.00"), 0
    for k, day in enumerate(days):
        entries = []
        for j in range(rng.randint(8, 14)):
            line += 1
            amount = Decimal(rng.randint(-500000, 800000)) / 100
            if amount > 0:
                ref = f"INV-{day:%Y}-{line:05d}"
                narrative = f"Invoice {ref}"
                end_to_end, remittance = (
                    ("", f"Payment of invoice {ref}, thank you") if line % 2 else (ref, narrative)
                )
            else:
                ref = f"PAY{day:%m%d}{j:03d}"
                narrative = remittance = f"Supplier payment {ref}"
                end_to_end = ref
            entries.append(
                Entry(
                    amount,
                    day,
                    ref=f"B{line:05d}",
                    end_to_end=end_to_end,
                    counterparty=f"Client {line % 23}",
                    description=remittance,
                )
            )
            booked = amount + Decimal("10.00") if line % 37 == 0 else amount  # keyed wrong in the ledger
            gl.append(f"JL{line:06d},{day},{day},{GL_ACCOUNT},{booked:.2f},GBP,{ref},{narrative}")
            if k == len(days) - 2 and j == 0:  # yesterday's first payment posted twice: a duplicate
                gl.append(f"JL{line:06d}B,{day},{day},{GL_ACCOUNT},{booked:.2f},GBP,{ref},{narrative}")
        notifications.append(
            Statement(
                f"NTF-{day:%Y%m%d}",
                ACCOUNT_IBAN,
                "GBP",
                opening,
                day,
                day,
                lambda e=entries[:3]: e,
                sequence=k + 1,
            )
        )
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
    return "\n".join(gl) + "\n", statements, notifications


def seed_ingestion_demo(out) -> None:
    tenant, _ = Tenant.objects.get_or_create(slug="demo", defaults={"name": "Demo Bank"})
    sources = {
        name: services.source_upsert(
            tenant=tenant,
            actor=ACTOR,
            name=name,
            kind=kind,
            format=fmt,
            mapping=mapping,
            re_reports=RE_REPORTS.get(name),
        )[0]
        for name, (kind, fmt, mapping) in SOURCES.items()
    }
    days, today = demo_days(tenant)
    first = days[0]
    rng = random.Random(20240131)  # noqa: S311  (deterministic demo data, not security)
    trades, settlements, positions = _trades_and_settlements(days, today, rng)
    gl, statements, notifications = _cash(days, rng)
    files = {
        "fo-trades": ("trades.csv", trades),
        "custodian-settlements": ("settlements.csv", settlements),
        "custody-positions": ("positions.csv", positions),
        "gl-cash": ("gl-cash.csv", gl),
        # The notifications first, as the bank sends them: the statement then re-reports them.
        "bank-camt054": (
            "notifications.xml",
            "".join(camt_chunks(notifications, message="054", msg_id=f"DEMO-NTF-{first:%Y%m}")),
        ),
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
                + (f", {batch.rows_linked} linked (notified intraday)" if batch.rows_linked else "")
            )
