"""The filings workflow: every write, inside transaction.atomic with its audit event.

draft → validated → pending_approval → approved → packaged → submitted → accepted /
accepted_with_warnings (or, rejected by FinCEN, back to draft with the errors). Each move is a
compare-and-set on the status, so two clicks move a filing once. ``now`` is injectable (a fixed
clock makes packages byte-identical in tests).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone
from lxml import etree

from filings import aggregation, metrics, sar_xml, selectors
from filings.ctr_xml import GENERATOR_VERSION, ctr_batch_xml
from filings.models import Acknowledgement, Filing, FilingLineage, FilingSubject, Package, PartyVersion
from filings.validation import NS, THRESHOLD, catalog, fatal, parse, schema_sha256, validate_batch
from jfintech import audit
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from jfintech.tenancy.permissions import require

log = get_logger(__name__)
S = Filing.Status
REMIND_DAYS = 3  # reminders start this many days before the due date
# A package is generated and validated inside the request: ~35 ms a filing (bench/filings.py, XSD
# 1.1 in pure Python), so 500 filings stay inside gunicorn's 60 s. Larger sets are split into
# several packages (FinCEN accepts many batch files); a worker-side packager is the way past this.
MAX_PACKAGE_FILINGS = 500


def _actor_key(actor: Actor) -> str:
    return f"{actor.kind}:{actor.id}"


def _snapshot(f: Filing) -> dict:
    return {
        "status": f.status,
        "version": f.version,
        "bsa_id": f.bsa_id,
        "prior_bsa_id": f.prior_bsa_id,
        "approver": f.approver,
        "package": f.package_id,
        "errors": len(f.errors or []),
    }


def _locked(tenant, filing_id: int) -> Filing:
    filing = Filing.objects.select_for_update().filter(tenant=tenant, pk=filing_id).first()
    if filing is None:
        raise ApplicationError("No such filing for this tenant.", code="not_found", status=404)
    return filing


def _expect(filing: Filing, *statuses: str) -> None:
    if filing.status not in statuses:
        raise ApplicationError(
            f"Filing {filing.pk} is {filing.status}; this needs {' or '.join(statuses)}.",
            code="invalid_state",
            status=409,
            extra={"status": filing.status},
        )


def _move(filing: Filing, *, actor, action: str, before: dict, **fields) -> Filing:
    for name, value in fields.items():
        setattr(filing, name, value)
    filing.save(update_fields=list(fields))
    audit.record(
        tenant=filing.tenant, actor=actor, action=action, obj=filing, before=before, after=_snapshot(filing)
    )
    return filing


def _institution(tenant):
    inst = selectors.institution_of(tenant=tenant)
    if inst is None:
        raise ApplicationError(
            "Configure the filing institution first.", code="institution_missing", status=409
        )
    return inst


# --- preparation --------------------------------------------------------------------------------


def ctr_prepare(
    *, tenant, actor, first: date, last: date | None = None, now: datetime | None = None
) -> aggregation.Prepared:
    """Aggregate the period's cash transactions into draft CTRs with lineage (idempotent)."""
    require(tenant=tenant, actor=actor, area="filing", verb="prepare")
    last, now = last or first, now or timezone.now()
    if last < first or (last - first).days > 366:
        raise ApplicationError("The period is first..last, at most a year.", code="invalid_period")
    inst = _institution(tenant)
    with transaction.atomic():
        with transaction.get_connection().cursor() as cursor:
            missing = aggregation.missing_rates(cursor, tenant_id=tenant.pk, first=first, last=last)
        if missing:
            raise ApplicationError(
                f"No USD rate in the FX table ({inst.fx_rate_source}) for: "
                + ", ".join(f"{c} on {d}" for c, d in missing[:20]),
                code="fx_rate_missing",
                status=409,
                extra={"missing": [[c, str(d)] for c, d in missing]},
            )
        result = aggregation.aggregate(
            tenant_id=tenant.pk,
            first=first,
            last=last,
            now=now,
            preparer_id=_actor_key(actor),
            preparer=actor.display[:200],
            threshold=THRESHOLD,
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="filing.ctr_prepare",
            object_type="filings.filing",
            object_id=f"{first}..{last}",
            after={
                "filings": result.filings,
                "excluded": result.excluded,
                "lineage": result.lineage_rows,
                "fx_rate_source": inst.fx_rate_source,
            },
        )
    log.info(
        "ctr_prepared",
        tenant=tenant.slug,
        first=str(first),
        last=str(last),
        filings=result.filings,
        excluded=result.excluded,
    )
    return result


# --- generation and validation ------------------------------------------------------------------


# Per form type: the FinCEN format, its schema and the generator (a batch holds one form type).
FORMATS = {
    Filing.Kind.CTR: ("CTRX", "EFL_CTRXBatchSchema.xsd v1.2", GENERATOR_VERSION),
    Filing.Kind.SAR: ("SARX", "EFL_SARXBatchSchema.xsd v1.2", sar_xml.GENERATOR_VERSION),
}


def _kind_of(filings: list[Filing]) -> str:
    kinds = {f.kind for f in filings}
    if len(kinds) != 1:
        raise ApplicationError(
            "A batch file holds one form type: package CTRs and SARs separately.",
            code="package_mixed_kinds",
            status=409,
        )
    return kinds.pop()


def batch_xml(*, tenant, filings: list[Filing], filing_date: date) -> tuple[bytes, list]:
    """The batch XML for ``filings`` (one form type) and the facts the validator needs."""
    inst = selectors.institution_input(_institution(tenant))
    if _kind_of(filings) == Filing.Kind.SAR:
        activities = selectors.sar_activities(filings=filings)
        return sar_xml.sar_batch_xml(activities, institution=inst, filing_date=filing_date), []
    activities = selectors.ctr_activities(filings=filings)
    return ctr_batch_xml(activities, institution=inst, filing_date=filing_date), [a.facts for a in activities]


def filing_validate(*, tenant, actor, filing_id: int, now: datetime | None = None) -> Filing:
    """Generate the filing alone and validate it (XSD and the rule catalog): all violations are
    stored on the filing; with no fatal one it is ``validated``."""
    require(tenant=tenant, actor=actor, area="filing", verb="prepare")
    now = now or timezone.now()
    with transaction.atomic():
        filing = _locked(tenant, filing_id)
        _expect(filing, S.DRAFT, S.VALIDATED)
        before = _snapshot(filing)
        xml, facts = batch_xml(tenant=tenant, filings=[filing], filing_date=now.date())
        violations = validate_batch(xml, kind=filing.kind, facts=facts)
        status = S.DRAFT if fatal(violations) else S.VALIDATED
        return _move(
            filing,
            actor=actor,
            action="filing.validate",
            before=before,
            status=status,
            errors=[v.as_dict() for v in violations],
            preparer_id=_actor_key(actor),
            preparer=actor.display[:200],
        )


def filing_request_approval(*, tenant, actor, filing_id: int) -> Filing:
    require(tenant=tenant, actor=actor, area="filing", verb="prepare")
    with transaction.atomic():
        filing = _locked(tenant, filing_id)
        _expect(filing, S.VALIDATED)
        return _move(
            filing,
            actor=actor,
            action="filing.request_approval",
            before=_snapshot(filing),
            status=S.PENDING_APPROVAL,
        )


def filing_send_back(*, tenant, actor, filing_id: int, reason: str) -> Filing:
    """The approver returns the filing to its preparer (back to draft), saying why."""
    require(tenant=tenant, actor=actor, area="filing", verb="approve")
    if not reason.strip():
        raise ApplicationError("Say why the filing goes back.", code="reason_required")
    with transaction.atomic():
        filing = _locked(tenant, filing_id)
        _expect(filing, S.PENDING_APPROVAL)
        errors = [{"code": "SENT-BACK", "severity": "fatal", "path": "/", "message": reason.strip()[:2000]}]
        return _move(
            filing,
            actor=actor,
            action="filing.send_back",
            before=_snapshot(filing),
            status=S.DRAFT,
            errors=errors,
        )


def filing_approve(
    *,
    tenant,
    actor,
    filing_id: int,
    override_case_ids: list[int] | None = None,
    override_reason: str = "",
    now: datetime | None = None,
) -> Filing:
    """Four eyes: the approver is not the preparer. Readiness gate: open breaks above the tenant's
    threshold on the filing's source accounts block approval unless every one is named in
    ``override_case_ids`` with a reason (recorded on the filing and audited)."""
    require(tenant=tenant, actor=actor, area="filing", verb="approve")
    now = now or timezone.now()
    with transaction.atomic():
        filing = _locked(tenant, filing_id)
        _expect(filing, S.PENDING_APPROVAL)
        if filing.preparer_id == _actor_key(actor):
            raise ApplicationError(
                "Four eyes: the preparer of a filing may not approve it.", code="four_eyes", status=403
            )
        before = _snapshot(filing)
        inst = _institution(tenant)
        blocking = selectors.gate_breaks(tenant=tenant, filing=filing, threshold=inst.break_threshold)
        override = {}
        if blocking:
            named = {int(i) for i in (override_case_ids or [])}
            unnamed = [b for b in blocking if b["case_id"] not in named]
            if unnamed or not override_reason.strip():
                raise ApplicationError(
                    f"{len(blocking)} open break(s) above {inst.break_threshold} on the filing's accounts; "
                    "approve only with an override naming each of them and a reason.",
                    code="readiness_gate",
                    status=409,
                    extra={"breaks": blocking},
                )
            override = {
                "breaks": blocking,
                "reason": override_reason.strip()[:2000],
                "by": actor.display[:200],
                "at": now.isoformat(),
            }
            audit.record(
                tenant=tenant, actor=actor, action="filing.gate_override", obj=filing, after=override
            )
        return _move(
            filing,
            actor=actor,
            action="filing.approve",
            before=before,
            status=S.APPROVED,
            approver=actor.display[:200],
            approved_at=now,
            gate_override=override,
        )


# --- package, submission, acknowledgement -------------------------------------------------------


def _manifest(*, tenant, filings, xml: bytes, now: datetime, actor) -> dict:
    rules = catalog()
    kind = _kind_of(filings)
    form, schema_name, generator = FORMATS[kind]
    return {
        "format": form,
        "xml_sha256": hashlib.sha256(xml).hexdigest(),
        "xml_bytes": len(xml),
        "schema": schema_name,
        "schema_sha256": schema_sha256(kind),
        "rule_catalog_version": rules.version,
        "rule_catalog_sha256": rules.sha256,
        "generator_version": generator,
        "created_at": now.isoformat(),
        "created_by": actor.display,
        "inputs_as_of": max(f.prepared_at for f in filings).isoformat(),
        "filings": [
            {
                "id": f.pk,
                "activity": i,
                "version": f.version,
                "prior_bsa_id": f.prior_bsa_id,
                "subject_key": f.subject_key,
                "transaction_date": str(f.period_start),
                "preparer": f.preparer,
                "approver": f.approver,
                "approved_at": f.approved_at.isoformat() if f.approved_at else None,
            }
            for i, f in enumerate(filings, start=1)
        ],
    }


def package_create(*, tenant, actor, filing_ids: list[int], now: datetime | None = None) -> Package:
    """One batch file for approved filings: validated whole before it is stored (write-once)."""
    require(tenant=tenant, actor=actor, area="filing", verb="package")
    now = now or timezone.now()
    if not filing_ids:
        raise ApplicationError("Name the approved filings to package.", code="invalid")
    if len(set(filing_ids)) > MAX_PACKAGE_FILINGS:
        raise ApplicationError(
            f"At most {MAX_PACKAGE_FILINGS} filings a package; split them.",
            code="package_too_large",
            status=413,
        )
    with transaction.atomic():
        filings = list(
            Filing.objects.select_for_update().filter(tenant=tenant, pk__in=filing_ids).order_by("pk")
        )
        if len(filings) != len(set(filing_ids)):
            raise ApplicationError("No such filing for this tenant.", code="not_found", status=404)
        for f in filings:
            _expect(f, S.APPROVED)
        kind = _kind_of(filings)
        xml, facts = batch_xml(tenant=tenant, filings=filings, filing_date=now.date())
        problems = fatal(validate_batch(xml, kind=kind, facts=facts))
        if problems:
            raise ApplicationError(
                "The batch does not validate; nothing was packaged.",
                code="package_invalid",
                status=409,
                extra={"violations": [v.as_dict() for v in problems[:200]]},
            )
        manifest = _manifest(tenant=tenant, filings=filings, xml=xml, now=now, actor=actor)
        package = Package.objects.create(
            tenant=tenant,
            kind=kind,
            xml=xml,
            sha256=manifest["xml_sha256"],
            size_bytes=len(xml),
            manifest=manifest,
            created_at=now,
            created_by=actor.display[:200],
        )
        for f in filings:
            _move(
                f,
                actor=actor,
                action="filing.package",
                before=_snapshot(f),
                status=S.PACKAGED,
                package=package,
            )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="package.create",
            obj=package,
            after={"sha256": package.sha256, "filings": [f.pk for f in filings]},
        )
    return package


def package_regenerate(*, tenant, package: Package) -> bytes:
    """The package's XML generated again from its filings' stored inputs and its own date."""
    ids = [f["id"] for f in package.manifest["filings"]]
    filings = sorted(Filing.objects.filter(tenant=tenant, pk__in=ids), key=lambda f: ids.index(f.pk))
    return batch_xml(tenant=tenant, filings=filings, filing_date=package.created_at.date())[0]


def package_submit(*, tenant, actor, package_id: int, now: datetime | None = None) -> Package:
    """Record that the package was sent to FinCEN (BSA E-Filing); its filings are ``submitted``."""
    require(tenant=tenant, actor=actor, area="filing", verb="transmit")
    now = now or timezone.now()
    with transaction.atomic():
        package = Package.objects.select_for_update().filter(tenant=tenant, pk=package_id).first()
        if package is None:
            raise ApplicationError("No such package for this tenant.", code="not_found", status=404)
        if package.submitted_at is not None:
            raise ApplicationError("The package was already submitted.", code="invalid_state", status=409)
        Package.objects.filter(pk=package.pk).update(submitted_at=now, submitted_by=actor.display[:200])
        package.refresh_from_db()
        for f in Filing.objects.select_for_update().filter(package=package, status=S.PACKAGED):
            _move(f, actor=actor, action="filing.submit", before=_snapshot(f), status=S.SUBMITTED)
        audit.record(
            tenant=tenant, actor=actor, action="package.submit", obj=package, after={"at": now.isoformat()}
        )
    return package


def _q(tag):
    return f"{{{NS}}}{tag}"


def parse_acknowledgement(xml: bytes) -> dict[int, dict]:
    """FinCEN's batch acknowledgement: per activity (the SeqNum of the Activity we sent), the BSA ID
    and the errors (path, level, code). Shape: docs/filings.md."""
    try:
        root = parse(xml).getroot()
    except etree.XMLSyntaxError as exc:
        raise ApplicationError(f"The acknowledgement is not XML: {exc}", code="ack_malformed") from exc
    if etree.QName(root).localname != "EFilingSubmissionXML":
        raise ApplicationError("Not a FinCEN acknowledgement (EFilingSubmissionXML).", code="ack_malformed")
    activities = {}
    for act in root.iter(_q("EFilingActivityXML")):
        seq = act.get("SeqNum")
        bsa_id = (act.findtext(_q("BSAID")) or "").strip()
        if not (seq and seq.isdigit()) or (bsa_id and not (len(bsa_id) == 14 and bsa_id.isdigit())):
            raise ApplicationError(
                f"Activity {seq!r}: bad SeqNum or BSA ID {bsa_id!r}.", code="ack_malformed"
            )
        errors = [
            {
                "path": (e.findtext(_q("ErrorContextText")) or "").strip(),
                "element": (e.findtext(_q("ErrorElementNameText")) or "").strip(),
                "level": (e.findtext(_q("ErrorLevelText")) or "").strip().upper(),
                "code": (e.findtext(_q("ErrorTypeCode")) or "").strip(),
                "message": (e.findtext(_q("ErrorText")) or "").strip(),
            }
            for e in act.iter(_q("EFilingActivityErrorXML"))
        ]
        activities[int(seq)] = {"bsa_id": bsa_id, "errors": errors}
    return activities


def _activity_seqnums(xml: bytes) -> list[int]:
    return [int(a.get("SeqNum")) for a in parse(xml).getroot().findall(_q("Activity"))]


def acknowledgement_receive(
    *, tenant, actor, package_id: int, xml: bytes, now: datetime | None = None
) -> Acknowledgement:
    """Store FinCEN's acknowledgement and apply it: BSA IDs and errors on the filings; a FATAL error
    returns the filing to draft with the errors; WARN → accepted with warnings. The same
    acknowledgement twice is refused (unique per package and sha256)."""
    require(tenant=tenant, actor=actor, area="filing", verb="transmit")
    now = now or timezone.now()
    parsed = parse_acknowledgement(xml)
    with transaction.atomic():
        package = Package.objects.select_for_update().filter(tenant=tenant, pk=package_id).first()
        if package is None:
            raise ApplicationError("No such package for this tenant.", code="not_found", status=404)
        if package.submitted_at is None:
            raise ApplicationError("The package has not been submitted.", code="invalid_state", status=409)
        sha = hashlib.sha256(xml).hexdigest()
        if Acknowledgement.objects.filter(package=package, sha256=sha).exists():
            raise ApplicationError(
                "This acknowledgement was already recorded.", code="ack_duplicate", status=409
            )
        seqnums = _activity_seqnums(bytes(package.xml))
        by_activity = {
            seq: entry["id"] for seq, entry in zip(seqnums, package.manifest["filings"], strict=True)
        }
        unknown = sorted(set(parsed) - set(by_activity))
        if unknown:
            raise ApplicationError(
                f"Activities {unknown} are not in package {package.pk}.", code="ack_mismatch", status=409
            )
        summary = {"accepted": 0, "accepted_with_warnings": 0, "rejected": 0}
        for seq, entry in sorted(parsed.items()):
            filing = Filing.objects.select_for_update().get(pk=by_activity[seq])
            _expect(filing, S.SUBMITTED)
            before, levels = _snapshot(filing), {e["level"] for e in entry["errors"]}
            if "FATAL" in levels or not entry["bsa_id"]:
                status, outcome, package_ref = S.DRAFT, "rejected", None
            else:
                status = S.ACCEPTED_WITH_WARNINGS if entry["errors"] else S.ACCEPTED
                outcome, package_ref = status, package
            summary[outcome] += 1
            _move(
                filing,
                actor=actor,
                action=f"filing.ack_{outcome}",
                before=before,
                status=status,
                bsa_id=entry["bsa_id"],
                errors=entry["errors"],
                package=package_ref,
            )
            if status != S.DRAFT and filing.parent_id:
                parent = Filing.objects.select_for_update().get(pk=filing.parent_id)
                _move(
                    parent,
                    actor=actor,
                    action="filing.superseded",
                    before=_snapshot(parent),
                    status=S.SUPERSEDED,
                )
        ack = Acknowledgement.objects.create(
            tenant=tenant,
            package=package,
            xml=xml,
            sha256=sha,
            received_at=now,
            received_by=actor.display[:200],
            summary=summary,
        )
        audit.record(tenant=tenant, actor=actor, action="package.acknowledge", obj=ack, after=summary)
    return ack


# --- amendments and deadlines -------------------------------------------------------------------


# A SAR's draft, carried into its amendment (blank on a CTR).
SAR_DRAFT_FIELDS = (
    "detected_on",
    "referred_case_ids",
    "accounts",
    "amount_involved",
    "activity_subtypes",
    "activity_other_texts",
    "narrative",
)


def filing_amend(*, tenant, actor, filing_id: int, now: datetime | None = None) -> Filing:
    """A correction: a new draft version linked to its parent, carrying the parent's BSA ID (the
    corrects/amends indicator follows from it), the same lineage, and each subject's current
    party version (the correction is prepared now)."""
    require(tenant=tenant, actor=actor, area="filing", verb="prepare")
    now = now or timezone.now()
    with transaction.atomic():
        parent = _locked(tenant, filing_id)
        _expect(parent, S.ACCEPTED, S.ACCEPTED_WITH_WARNINGS)
        if Filing.objects.filter(parent=parent).exists():
            raise ApplicationError(
                "This version already has an amendment.", code="already_amended", status=409
            )
        child = Filing.objects.create(
            tenant=tenant,
            kind=parent.kind,
            status=S.DRAFT,
            subject_key=parent.subject_key,
            period_start=parent.period_start,
            period_end=parent.period_end,
            due_date=parent.due_date,
            parent=parent,
            version=parent.version + 1,
            prior_bsa_id=parent.bsa_id,
            total_cash_in=parent.total_cash_in,
            total_cash_out=parent.total_cash_out,
            **{name: getattr(parent, name) for name in SAR_DRAFT_FIELDS},
            preparer_id=_actor_key(actor),
            preparer=actor.display[:200],
            prepared_at=now,
        )
        FilingLineage.objects.bulk_create(
            FilingLineage(
                tenant=tenant,
                filing=child,
                transaction_id=row.transaction_id,
                direction=row.direction,
                amount=row.amount,
                currency=row.currency,
                usd_per_unit=row.usd_per_unit,
                amount_usd=row.amount_usd,
                rate_source=row.rate_source,
            )
            for row in FilingLineage.objects.filter(filing=parent)
        )
        current = dict(
            PartyVersion.objects.filter(
                tenant=tenant, is_current=True, party_key__in=parent.subjects.values("party_key")
            ).values_list("party_key", "pk")
        )
        FilingSubject.objects.bulk_create(
            FilingSubject(
                tenant=tenant,
                filing=child,
                party_key=s.party_key,
                party_version_id=current.get(s.party_key, s.party_version_id),
                role=s.role,
                cash_in=s.cash_in,
                cash_out=s.cash_out,
                transactions=s.transactions,
            )
            for s in parent.subjects.all()
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="filing.amend",
            obj=child,
            after={**_snapshot(child), "parent": parent.pk},
        )
    return child


def deadlines_remind(*, today: date | None = None) -> dict:
    """Beat: remind (log + audit, once a day per filing) of filings due within REMIND_DAYS, and set
    the overdue gauge per kind."""
    today = today or timezone.now().date()
    reminded = 0
    with transaction.atomic():
        due = selectors.filings_due_soon(today=today, days=REMIND_DAYS) | selectors.filings_overdue(
            today=today
        )
        for f in due.select_for_update().exclude(reminded_on=today).select_related("tenant"):
            Filing.objects.filter(pk=f.pk).update(reminded_on=today)
            audit.record(
                tenant=f.tenant,
                actor=Actor.for_system("filings.deadlines"),
                action="filing.reminder",
                obj=f,
                after={"due_date": str(f.due_date), "status": f.status},
            )
            log.warning(
                "filing_deadline_reminder",
                tenant=f.tenant.slug,
                filing_id=f.pk,
                kind=f.kind,
                due_date=str(f.due_date),
                overdue=f.due_date < today,
            )
            reminded += 1
    overdue = metrics.set_overdue(today=today)
    return {"reminded": reminded, "overdue": overdue}


def manifest_bytes(package: Package) -> bytes:
    return json.dumps(package.manifest, sort_keys=True, indent=2).encode()
