"""The auditor pack: a ZIP an auditor can read (HTML and PDF summary linking every file) and
anyone can check (a manifest of SHA-256 per file, signed with the audit chain).

Layout::

    summary.html, summary.pdf         what the pack holds, with links to every file
    reports/run-<id>.html|pdf         each run of the definition in the period
    reports/statement-<account>-<ccy>  the reconciliation statement of each account whose bank
                                      statement closes in the period (HTML, PDF)
    reports/aging-<by>.html|pdf       break aging by type, root cause, assignee (at the period end)
    reports/trends.html|pdf           the period's trends
    reports/inventory.html|pdf|csv    the break inventory as of the period end
    decisions.csv                     four-eyes decisions with makers and checkers
    manifest.json                     {"files": {path: sha256}, tenant, definition, period, chain}
    manifest.sig                      HMAC-SHA256 (AUDIT_HMAC_KEY, label "pack") over the chain
                                      position and the manifest's SHA-256

The chain position signed is the tenant's audit chain head as it stood at the generation time
(the last sealed event at or before it), so a pack regenerated for the same clock is byte-identical.
``verify_pack`` recomputes every hash, checks the signature, re-verifies the tenant's chain and
that the signed position still holds the same hash: a changed file is named, an altered audit
event breaks the chain.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from exceptions import selectors as case_selectors
from jfintech.audit import selectors as audit_selectors
from jfintech.audit.chain import sign, signature_valid, verify_chain
from jfintech.tenancy import calendar
from jfintech.tenancy.models import Tenant
from reconciliation.matching import selectors as matching_selectors
from reconciliation.runs import selectors as run_selectors
from reporting import exports, reports
from reporting.render import report_html, report_pdf

MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
DECISION_COLUMNS = [
    "approval",
    "case",
    "kind",
    "status",
    "currency",
    "amount (minor units)",
    "maker",
    "requested at",
    "checker",
    "decided at",
    "maker's note",
    "checker's note",
]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _zip_write(archive: zipfile.ZipFile, name: str, data: bytes, when: datetime) -> None:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _csv(meta, columns, rows) -> bytes:
    return b"".join(exports.csv_stream(meta, columns, rows))


def build_pack(*, tenant, definition, date_from: date, date_to: date, user, now: datetime) -> bytes:
    """The pack's bytes; the same inputs, data and ``now`` give the same bytes."""
    zone = calendar.tenant_zone(tenant)
    period_end = min(now, datetime.combine(date_to + timedelta(days=1), time(0), tzinfo=zone))
    period_start = datetime.combine(date_from, time(0), tzinfo=zone)
    files: dict[str, bytes] = {}
    listed: list[tuple[str, str]] = []  # (title, html path)

    def add(name: str, report: reports.Report):
        files[f"reports/{name}.html"] = report_html(report).encode()
        files[f"reports/{name}.pdf"] = report_pdf(report)
        listed.append((report.title, f"reports/{name}.html"))
        return report

    for run in run_selectors.runs_for_period(
        tenant=tenant, definition_id=definition.pk, date_from=date_from, date_to=date_to
    ):
        add(f"run-{run.pk}", reports.run_report(tenant=tenant, run_id=run.pk, user=user, now=now))
    for account, currency in matching_selectors.statement_accounts(
        tenant=tenant, definition=definition, date_from=date_from, date_to=date_to
    ):
        add(
            f"statement-{_safe(account)}-{currency}",
            reports.statement_report(
                tenant=tenant,
                definition_id=definition.pk,
                account=account,
                currency=currency,
                period_end=date_to,
                user=user,
                now=now,
            ),
        )
    for by in reports.AGING_BY:
        add(f"aging-{by}", reports.aging_report(tenant=tenant, by=by, user=user, now=period_end))
    add(
        "trends",
        reports.trends_report(tenant=tenant, date_from=date_from, date_to=date_to, user=user, now=now),
    )
    inventory = add("inventory", reports.inventory_report(tenant=tenant, at=period_end, user=user, now=now))
    files["reports/inventory.csv"] = _csv(
        inventory.header(), inventory.tables[0].columns, inventory.tables[0].rows
    )
    decisions = [
        [
            d["id"],
            d["case_id"],
            d["kind"],
            d["status"],
            d["currency"],
            reports.minor_units(d["amount"], d["currency"]),
            d["requested_by_display"],
            d["requested_at"],
            d["decided_by_display"],
            d["decided_at"],
            d["note"],
            d["decision_note"],
        ]
        for d in case_selectors.case_decisions(
            tenant=tenant, definition_id=definition.pk, since=period_start, until=period_end
        )
    ]
    meta = [
        ("Tenant", f"{tenant.name} ({tenant.slug})"),
        ("Definition", definition.name),
        ("Period", f"{date_from} .. {date_to}"),
        ("Generated at", now.isoformat()),
        ("Generated by", reports.who(user)),
        ("Data as of", period_end.isoformat()),
    ]
    files["decisions.csv"] = _csv(meta, DECISION_COLUMNS, decisions)

    summary = reports.Report(
        kind="auditor_pack",
        title=f"Auditor pack: {definition.name}, {date_from} to {date_to}",
        tenant=f"{tenant.name} ({tenant.slug})",
        filters={"definition": definition.name, "from": date_from, "to": date_to},
        generated_at=now,
        generated_by=reports.who(user),
        data_as_of=period_end,
        tables=[
            reports.Table("Decisions with makers and checkers", DECISION_COLUMNS, decisions),
            reports.Table("Files", ["file", "SHA-256"], []),
        ],
        links=[(title, path) for title, path in listed]
        + [("Inventory (CSV)", "reports/inventory.csv"), ("Decisions (CSV)", "decisions.csv")],
        notes=[
            "Every file's SHA-256 is in manifest.json, signed in manifest.sig with the tenant's audit "
            "chain head at generation; `manage.py verify_pack FILE` re-checks both."
        ],
    )
    summary.tables[1].rows = [
        [name, hashlib.sha256(data).hexdigest()] for name, data in sorted(files.items())
    ]
    files["summary.html"] = report_html(summary).encode()
    files["summary.pdf"] = report_pdf(summary)

    seq, head = audit_selectors.chain_position_at(tenant=tenant, at=now)
    manifest = {
        "generator": reports.GENERATOR_VERSION,
        "tenant": tenant.slug,
        "definition": definition.name,
        "period": [date_from.isoformat(), date_to.isoformat()],
        "generated_at": now.isoformat(),
        "generated_by": reports.who(user),
        "inputs_as_of": period_end.isoformat(),
        "audit_chain": {"chain": tenant.pk, "seq": seq, "hash": head},
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, indent=1).encode()
    signature = sign("pack", tenant.pk, seq, hashlib.sha256(manifest_bytes).hexdigest())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in sorted(files.items()):
            _zip_write(archive, name, data, now)
        _zip_write(archive, MANIFEST, manifest_bytes, now)
        _zip_write(archive, SIGNATURE, signature.encode(), now)
    return out.getvalue()


@dataclass
class PackCheck:
    problems: list[str] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_pack(data: bytes) -> PackCheck:
    """Every file against the manifest, the manifest against its signature, the signed chain
    position against the tenant's (re-verified) audit chain."""
    check = PackCheck()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        manifest_bytes = archive.read(MANIFEST)
        signature = archive.read(SIGNATURE).decode()
        manifest = json.loads(manifest_bytes)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        check.problems.append(f"not a readable pack: {exc}")
        return check
    listed = manifest.get("files", {})
    for name in sorted(names - {MANIFEST, SIGNATURE}):
        check.files += 1
        if name not in listed:
            check.problems.append(f"{name}: not in the manifest (added)")
            continue
        digest = hashlib.sha256(archive.read(name)).hexdigest()
        if digest != listed[name]:
            check.problems.append(f"{name}: changed (SHA-256 {digest} != manifest {listed[name]})")
    for name in sorted(set(listed) - names):
        check.problems.append(f"{name}: listed in the manifest but missing from the pack")
    position = manifest.get("audit_chain", {})
    chain, seq, head = position.get("chain"), position.get("seq"), position.get("hash")
    if not signature_valid(signature, "pack", chain, seq, hashlib.sha256(manifest_bytes).hexdigest()):
        check.problems.append(
            "manifest.json: signature invalid (the manifest was altered or signed with another key)"
        )
    tenant = Tenant.objects.filter(pk=chain, slug=manifest.get("tenant")).first()
    if tenant is None:
        check.problems.append(f"audit chain: no tenant {manifest.get('tenant')!r} with chain {chain}")
        return check
    report = verify_chain(tenant)
    if not report.ok:
        check.problems.append(f"audit chain broken: {report.describe()}")
    stored = audit_selectors.chain_hash_at(tenant=tenant, seq=seq)
    if stored != head:
        check.problems.append(
            f"audit chain: the signed position seq={seq} holds {stored} now, not {head} "
            "(the trail was rewritten)"
        )
    return check
