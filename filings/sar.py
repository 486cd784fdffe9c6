"""SAR drafts: referred from the exception desk, edited by compliance with history (the audit trail).

The referral (cases → a SAR draft with subjects, accounts, amount, activity dates), the draft's
edits (narrative within FinCEN's limit, suspicious activity subtype codes from the SARX schema,
amount, dates, the prior BSA ID of a continuing-activity report), the deadline. From there a SAR
takes the CTR's workflow (``filings.services``; XML in ``filings.sar_xml``). Cases are read through
``exceptions.selectors`` only.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Sum
from django.db.models.functions import Abs
from django.utils import timezone

from exceptions import selectors as exception_selectors
from filings.models import CashTransaction, Filing, FilingSubject, PartyVersion
from filings.validation import SAR_NARRATIVE_LIMIT as NARRATIVE_LIMIT
from filings.validation import SAR_OTHER_TEXT_LIMIT as OTHER_TEXT_LIMIT
from filings.validation import SAR_SUBJECT_CODE as SUBJECT_ROLE
from filings.validation import activity_subtype_codes, clean_text, other_activity_codes
from jfintech import audit
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.permissions import require

SAR_DUE_DAYS, SAR_DUE_DAYS_NO_SUBJECT = 30, 60  # 31 CFR 1020.320(b)(3)
# What XML 1.0 (and PostgreSQL text) cannot carry, and DEL: the narrative keeps only printable text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _actor_key(actor) -> str:
    return f"{actor.kind}:{actor.id}"


def _snapshot(f: Filing) -> dict:
    return {
        "status": f.status,
        "narrative": f.narrative,
        "activity_subtypes": f.activity_subtypes,
        "activity_other_texts": f.activity_other_texts,
        "amount_involved": str(f.amount_involved) if f.amount_involved is not None else None,
        "period_start": str(f.period_start),
        "period_end": str(f.period_end),
        "due_date": str(f.due_date),
        "accounts": f.accounts,
        "referred_case_ids": f.referred_case_ids,
        "prior_bsa_id": f.prior_bsa_id,
    }


def sar_refer(
    *,
    tenant,
    actor,
    case_ids: list[int],
    note: str = "",
    detected_on: date | None = None,
    now: datetime | None = None,
) -> Filing:
    """An analyst refers break cases to compliance: a SAR draft with the cases' accounts, the amount
    at stake, the activity dates, and as subjects the parties of those accounts' cash transactions
    (their current versions). Due 30 days after detection, 60 when no subject is identified."""
    require(tenant=tenant, actor=actor, area="filing", verb="refer")
    now = now or timezone.now()
    ids = sorted({int(i) for i in case_ids})
    if not ids:
        raise ApplicationError("Name the cases to refer.", code="invalid")
    cases = exception_selectors.case_list(tenant=tenant).filter(pk__in=ids)
    if cases.count() != len(ids):
        raise ApplicationError("A case is not in this tenant.", code="case_not_found", status=404)
    facts = cases.aggregate(
        amount=Sum(Abs("amount_at_stake")), first=Min("first_seen_at"), last=Max("last_seen_at")
    )
    accounts = sorted(set(cases.exclude(account="").values_list("account", flat=True)))
    detected_on = detected_on or now.date()
    with transaction.atomic():
        # A case is referred once, whatever the other cases of the referral (JSONB containment).
        earlier = [
            i
            for i in ids
            if Filing.objects.filter(tenant=tenant, kind="sar", referred_case_ids__contains=[i]).exists()
        ]
        if earlier:
            raise ApplicationError(
                f"Case(s) {earlier} were referred already.", code="already_referred", status=409
            )
        keys = sorted(
            {
                k
                for pair in CashTransaction.objects.filter(
                    tenant=tenant, account__in=accounts, is_current=True
                )
                .values_list("conducted_by", "on_behalf_of")
                .distinct()
                for k in pair
                if k
            }
        )
        parties = {
            p.party_key: p
            for p in PartyVersion.objects.filter(tenant=tenant, party_key__in=keys, is_current=True)
        }
        days = SAR_DUE_DAYS if parties else SAR_DUE_DAYS_NO_SUBJECT
        try:
            with transaction.atomic():
                filing = Filing.objects.create(
                    tenant=tenant,
                    kind=Filing.Kind.SAR,
                    subject_key=f"cases:{ids[0]}"[:64],
                    period_start=facts["first"].date(),
                    period_end=facts["last"].date(),
                    detected_on=detected_on,
                    due_date=detected_on + timedelta(days=days),
                    referred_case_ids=ids,
                    accounts=accounts,
                    amount_involved=(facts["amount"] or Decimal(0)).quantize(Decimal("0.01")),
                    preparer_id=_actor_key(actor),
                    preparer=actor.display[:200],
                    prepared_at=now,
                )
        except IntegrityError:
            raise ApplicationError(
                f"Case {ids[0]} was referred already.", code="already_referred", status=409
            ) from None
        FilingSubject.objects.bulk_create(
            FilingSubject(tenant=tenant, filing=filing, party_key=key, party_version=pv, role=SUBJECT_ROLE)
            for key, pv in sorted(parties.items())
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="filing.sar_refer",
            obj=filing,
            after={**_snapshot(filing), "note": note[:2000], "subjects": sorted(parties)},
        )
    return filing


def sar_update(*, tenant, actor, filing_id: int, **changes) -> Filing:
    """Compliance edits a SAR draft; every edit is an audit event with before and after (the
    draft's history). A validated SAR that is edited goes back to draft. ``prior_bsa_id`` (14
    digits, or blank) makes an original SAR a continuing-activity report on that prior SAR; an
    amendment's prior BSA ID is its parent's and is not edited. ``activity_other_texts`` maps each
    "Other" subtype code of the draft to its description (FinCEN's OtherSuspiciousActivityTypeText),
    which every "Other" code needs and no other code takes; it is sent whole, like the codes."""
    require(tenant=tenant, actor=actor, area="filing", verb="prepare")
    allowed = {
        "narrative",
        "activity_subtypes",
        "activity_other_texts",
        "amount_involved",
        "period_start",
        "period_end",
        "detected_on",
        "prior_bsa_id",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ApplicationError(f"Not editable: {sorted(unknown)}", code="invalid")
    if len(changes.get("narrative") or "") > NARRATIVE_LIMIT:
        raise ApplicationError(
            f"The narrative is limited to {NARRATIVE_LIMIT} characters.", code="narrative_too_long"
        )
    if _CONTROL.search(changes.get("narrative") or ""):
        raise ApplicationError(
            "The narrative may hold line breaks and tabs but no other control characters.",
            code="narrative_invalid",
        )
    bad = sorted(set(map(str, changes.get("activity_subtypes") or [])) - activity_subtype_codes())
    if bad:
        raise ApplicationError(
            f"Unknown suspicious activity subtype codes: {bad}", code="invalid_activity_code"
        )
    texts = changes.get("activity_other_texts", {})
    if not isinstance(texts, dict) or not all(isinstance(t, str) for t in texts.values()):
        raise ApplicationError("activity_other_texts maps codes to descriptions (text).", code="invalid")
    # RestrictString50, and not empty: FinCEN wants a description, not an empty element.
    bad = sorted(str(c) for c, t in texts.items() if not (0 < len(t) <= OTHER_TEXT_LIMIT and clean_text(t)))
    if bad:
        raise ApplicationError(
            f"The descriptions of {bad} must be 1-{OTHER_TEXT_LIMIT} printable characters without "
            "leading or trailing spaces.",
            code="activity_text_invalid",
        )
    if not re.fullmatch(r"([0-9]{14})?", changes.get("prior_bsa_id", "")):
        raise ApplicationError("A prior BSA ID is 14 digits.", code="invalid_bsa_id")
    with transaction.atomic():
        filing = Filing.objects.select_for_update().filter(tenant=tenant, pk=filing_id, kind="sar").first()
        if filing is None:
            raise ApplicationError("No such SAR for this tenant.", code="not_found", status=404)
        if filing.status not in (Filing.Status.DRAFT, Filing.Status.VALIDATED):
            raise ApplicationError("Only a draft SAR is edited.", code="invalid_state", status=409)
        if "prior_bsa_id" in changes and filing.parent_id:
            raise ApplicationError(
                "An amendment's prior BSA ID is its parent's.", code="invalid_state", status=409
            )
        before = _snapshot(filing)
        if "activity_subtypes" in changes:
            changes["activity_subtypes"] = sorted(set(map(str, changes["activity_subtypes"])))
        if "activity_other_texts" in changes:
            changes["activity_other_texts"] = dict(sorted((str(c), t) for c, t in texts.items()))
        for name, value in changes.items():
            setattr(filing, name, value)
        # Codes and descriptions are checked together, as the draft now holds them: either may be
        # the one edited.
        others = set(filing.activity_subtypes) & other_activity_codes()
        undescribed = sorted(others - set(filing.activity_other_texts))
        if undescribed:
            raise ApplicationError(
                f"The 'Other' codes {undescribed} need a description (activity_other_texts).",
                code="invalid_activity_code",
            )
        misplaced = sorted(set(filing.activity_other_texts) - others)
        if misplaced:
            raise ApplicationError(
                f"Only the draft's 'Other' codes take a description, not {misplaced}.",
                code="invalid_activity_code",
            )
        if filing.period_end < filing.period_start:
            raise ApplicationError("The activity ends before it starts.", code="invalid_period")
        if "detected_on" in changes:
            days = SAR_DUE_DAYS if filing.subjects.exists() else SAR_DUE_DAYS_NO_SUBJECT
            filing.due_date = filing.detected_on + timedelta(days=days)
        filing.status = Filing.Status.DRAFT
        filing.full_clean(exclude=["parent", "package"], validate_constraints=False)
        filing.save()
        audit.record(
            tenant=tenant,
            actor=actor,
            action="filing.sar_update",
            obj=filing,
            before=before,
            after=_snapshot(filing),
        )
    return filing


def filing_history(*, filing: Filing):
    """Every audited change of the filing, oldest first."""
    return AuditEvent.objects.filter(
        tenant_id=filing.tenant_id, object_type=Filing._meta.label_lower, object_id=str(filing.pk)
    ).order_by("occurred_at", "id")
