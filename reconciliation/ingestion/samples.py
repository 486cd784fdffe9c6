"""Generators of realistic bank files (camt.053/054, MT940, BAI2): tests, the benchmark and the demo.

They stream (yield text chunks), so a 100k-entry statement never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from xml.sax.saxutils import escape


@dataclass
class Entry:
    amount: Decimal  # signed: credit > 0, debit < 0
    booking_date: date
    value_date: date | None = None
    ref: str = ""  # NtryRef
    end_to_end: str = ""
    counterparty: str = ""
    description: str = ""
    reversal: bool = False
    status: str = "BOOK"
    # A batched booking: the amounts (signed) of its transactions.
    transactions: list[tuple[str, Decimal]] = field(default_factory=list)
    instructed: tuple[Decimal, str, Decimal] | None = None  # (amount, currency, exchange rate)
    # More references of a transaction (camt): InstrId, UETR (001.08 only), CdtrRefInf/Ref.
    instruction_id: str = ""
    uetr: str = ""
    creditor_reference: str = ""


@dataclass
class Statement:
    id: str
    account: str
    currency: str
    opening: Decimal
    opening_date: date
    closing_date: date
    entries: Callable[[], Iterable[Entry]]  # called twice: once for the closing balance
    sequence: int = 1
    closing: Decimal | None = None  # default: opening + the entries (a consistent statement)

    def closing_balance(self) -> Decimal:
        if self.closing is None:
            self.closing = self.opening + sum(
                (e.amount for e in self.entries() if e.status == "BOOK"), Decimal(0)
            )
        return self.closing


def _cdi(amount: Decimal) -> str:
    return "DBIT" if amount < 0 else "CRDT"


def _party(tag: str, name: str, version: str) -> str:
    name = escape(name)
    return (
        f"<{tag}><Pty><Nm>{name}</Nm></Pty></{tag}>" if version == "08" else f"<{tag}><Nm>{name}</Nm></{tag}>"
    )


def _entry(e: Entry, version: str) -> str:
    status = f"<Sts><Cd>{e.status}</Cd></Sts>" if version == "08" else f"<Sts>{e.status}</Sts>"
    parts = [
        "<Ntry>",
        f"<NtryRef>{escape(e.ref)}</NtryRef>" if e.ref else "",
        f'<Amt Ccy="{{ccy}}">{abs(e.amount):.2f}</Amt><CdtDbtInd>{_cdi(e.amount)}</CdtDbtInd>',
        "<RvslInd>true</RvslInd>" if e.reversal else "",
        status,
        f"<BookgDt><Dt>{e.booking_date.isoformat()}</Dt></BookgDt>",
        f"<ValDt><Dt>{(e.value_date or e.booking_date).isoformat()}</Dt></ValDt>",
        f"<AcctSvcrRef>{escape(e.ref or e.end_to_end)[:35]}</AcctSvcrRef>" if (e.ref or e.end_to_end) else "",
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>",
    ]
    txs = e.transactions or [(e.end_to_end, None)]
    details = []
    for ref, amount in txs:
        refs = [
            f"<InstrId>{escape(e.instruction_id)}</InstrId>" if e.instruction_id else "",
            f"<EndToEndId>{escape(ref or 'NOTPROVIDED')}</EndToEndId>",
            f"<UETR>{e.uetr}</UETR>" if e.uetr and version == "08" else "",
        ]
        tx = ["<TxDtls>", f"<Refs>{''.join(refs)}</Refs>"]
        if amount is not None:
            if version == "08":
                tx.append(f'<Amt Ccy="{{ccy}}">{abs(amount):.2f}</Amt><CdtDbtInd>{_cdi(amount)}</CdtDbtInd>')
            else:
                tx.append(f'<AmtDtls><TxAmt><Amt Ccy="{{ccy}}">{abs(amount):.2f}</Amt></TxAmt></AmtDtls>')
        elif e.instructed:
            amt, ccy, rate = e.instructed
            tx.append(
                f'<AmtDtls><InstdAmt><Amt Ccy="{ccy}">{amt:.2f}</Amt><CcyXchg><SrcCcy>{ccy}</SrcCcy>'
                f"<XchgRate>{rate}</XchgRate></CcyXchg></InstdAmt></AmtDtls>"
            )
        if e.counterparty:
            tag = "Dbtr" if e.amount >= 0 else "Cdtr"
            tx.append(f"<RltdPties>{_party(tag, e.counterparty, version)}</RltdPties>")
        remittance = f"<Ustrd>{escape(e.description)[:140]}</Ustrd>" if e.description else ""
        if e.creditor_reference:
            remittance += f"<Strd><CdtrRefInf><Ref>{escape(e.creditor_reference)}</Ref></CdtrRefInf></Strd>"
        if remittance:
            tx.append(f"<RmtInf>{remittance}</RmtInf>")
        tx.append("</TxDtls>")
        details.append("".join(tx))
    parts.append(f"<NtryDtls>{''.join(details)}</NtryDtls></Ntry>\n")
    return "".join(parts)


def _balance(code: str, amount: Decimal, ccy: str, day: date) -> str:
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="{ccy}">{abs(amount):.2f}</Amt>'
        f"<CdtDbtInd>{_cdi(amount)}</CdtDbtInd><Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>\n"
    )


def camt_chunks(
    statements: list[Statement],
    *,
    message: str = "053",
    version: str = "02",
    msg_id: str = "MSG-1",
    created: str = "2024-01-02T10:00:00",
) -> Iterator[str]:
    root, item = ("BkToCstmrStmt", "Stmt") if message == "053" else ("BkToCstmrDbtCdtNtfctn", "Ntfctn")
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.{message}.001.{version}">\n'
        f"<{root}><GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>\n"
    )
    for s in statements:
        yield (
            f"<{item}><Id>{escape(s.id)}</Id><ElctrncSeqNb>{s.sequence}</ElctrncSeqNb><CreDtTm>{created}</CreDtTm>"
            f"<Acct><Id><IBAN>{s.account}</IBAN></Id><Ccy>{s.currency}</Ccy></Acct>\n"
        )
        if message == "053":
            yield _balance("OPBD", s.opening, s.currency, s.opening_date)
            yield _balance("CLBD", s.closing_balance(), s.currency, s.closing_date)
        for e in s.entries():
            yield _entry(e, version).replace("{ccy}", s.currency)
        yield f"</{item}>\n"
    yield f"</{root}></Document>\n"


def mt940_chunks(statements: list[Statement]) -> Iterator[str]:
    def bal(tag: str, amount: Decimal, ccy: str, day: date) -> str:
        return (
            f":{tag}:{'D' if amount < 0 else 'C'}{day:%y%m%d}{ccy}{abs(amount):.2f}".replace(".", ",") + "\n"
        )

    for s in statements:
        yield f":20:{s.id[:16]}\n:25:{s.account}\n:28C:{s.sequence}/1\n"
        yield bal("60F", s.opening, s.currency, s.opening_date)
        for e in s.entries():
            mark = ("R" if e.reversal else "") + ("D" if e.amount < 0 else "C")
            if e.reversal:  # a reversal of a debit puts money back: RD is a credit
                mark = "RC" if e.amount < 0 else "RD"
            amount = f"{abs(e.amount):.2f}".replace(".", ",")
            day = e.value_date or e.booking_date
            yield (
                f":61:{day:%y%m%d}{e.booking_date:%m%d}{mark}{amount}NTRF{e.end_to_end[:16]}//{e.ref[:16]}\n"
                f":86:{e.description[:65] or e.counterparty[:65] or 'n/a'}\n"
            )
        yield bal("62F", s.closing_balance(), s.currency, s.closing_date)
        yield "-\n"


def bai2_text(
    statements: list[Statement], *, as_of: date, file_id: str = "FILE1", tamper_total: int = 0
) -> str:
    """A BAI2 file, one group per currency-agnostic as-of date (amounts in cents, 010/015 balances)."""
    lines = [
        f"01,SENDER,RECEIVER,{as_of:%y%m%d},1200,{file_id},,,2/",
        f"02,RECEIVER,BANK,1,{as_of:%y%m%d},,USD,2/",
    ]
    group_total = 0
    for s in statements:
        opening, closing = int(s.opening * 100), int(s.closing_balance() * 100)
        account = [f"03,{s.account},{s.currency},010,{opening},,,015,{closing},,/"]
        total = opening + closing
        for e in s.entries():
            cents = int(abs(e.amount) * 100)
            account.append(
                f"16,{'495' if e.amount < 0 else '195'},{cents},Z,{e.ref},{e.end_to_end},{e.description}/"
            )
            total += cents
        account.append(f"49,{total + tamper_total},{len(account) + 1}/")
        group_total += total + tamper_total
        lines.extend(account)
    records_in_group = len(lines) - 1 + 1
    lines.append(f"98,{group_total},{len(statements)},{records_in_group}/")
    lines.append(f"99,{group_total},1,{len(lines) + 1}/")
    return "\n".join(lines) + "\n"
