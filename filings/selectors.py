"""Reads of the filings app, scoped by tenant. The admin desk and the API share these.

Reconciliation quality is read only through ``exceptions.selectors`` (the readiness gate).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db.models import Count, F, Max, Q, QuerySet, Sum

from exceptions import selectors as exception_selectors
from exceptions.models import CaseStatus
from filings.ctr_xml import CtrActivity, Institution, Location, Person, Subject, currency_country
from filings.models import (
    Branch,
    CashTransaction,
    Filing,
    FilingInstitution,
    FilingLineage,
    FilingSubject,
    Package,
)
from filings.sar_xml import SarActivity, SarSubject
from filings.validation import FOREIGN_CODES

OPEN_STATUSES = (
    Filing.Status.DRAFT,
    Filing.Status.VALIDATED,
    Filing.Status.PENDING_APPROVAL,
    Filing.Status.APPROVED,
    Filing.Status.PACKAGED,
)
_PERSON_FIELDS = (
    "is_entity",
    "last_name",
    "first_name",
    "middle_name",
    "tin",
    "tin_type",
    "birth_date",
    "street",
    "city",
    "state",
    "zip_code",
    "country",
    "id_type",
    "id_number",
    "id_issuer_state",
    "id_issuer_country",
    "occupation",
)


def filing_list(*, tenant) -> QuerySet[Filing]:
    return Filing.objects.filter(tenant=tenant).select_related("parent", "package")


def filing_get(*, tenant, filing_id: int) -> Filing | None:
    return filing_list(tenant=tenant).filter(pk=filing_id).first()


def filing_chain(*, filing: Filing) -> list[Filing]:
    """The filing's versions, original first (an amendment links to its parent)."""
    root = filing
    while root.parent_id:
        root = root.parent
    chain, current = [root], root
    while (current := Filing.objects.filter(parent=current).first()) is not None:
        chain.append(current)
    return chain


def filings_overdue(*, tenant=None, today: date) -> QuerySet[Filing]:
    """Not yet submitted to FinCEN and past the due date (the desk filter and the metric)."""
    qs = Filing.objects.filter(status__in=OPEN_STATUSES, due_date__lt=today)
    return qs.filter(tenant=tenant) if tenant is not None else qs


def filings_due_soon(*, today: date, days: int) -> QuerySet[Filing]:
    return Filing.objects.filter(
        status__in=OPEN_STATUSES,
        due_date__gte=today,
        due_date__lte=date.fromordinal(today.toordinal() + days),
    )


def package_list(*, tenant) -> QuerySet[Package]:
    return Package.objects.filter(tenant=tenant).defer("xml")


def package_get(*, tenant, package_id: int) -> Package | None:
    return Package.objects.filter(tenant=tenant, pk=package_id).first()


def institution_of(*, tenant) -> FilingInstitution | None:
    return FilingInstitution.objects.filter(tenant=tenant).first()


def institution_input(inst: FilingInstitution) -> Institution:
    return Institution(**{f: getattr(inst, f) for f in Institution.__dataclass_fields__})


def source_accounts(*, filing: Filing) -> list[str]:
    return sorted(
        set(
            FilingLineage.objects.filter(filing=filing)
            .exclude(transaction__account="")
            .values_list("transaction__account", flat=True)
        )
    )


def gate_breaks(*, tenant, filing: Filing, threshold: Decimal) -> list[dict]:
    """Open break cases on the filing's source accounts, seen since its period began, whose amount
    at stake is above the tenant's threshold: they block approval unless overridden by name."""
    accounts = source_accounts(filing=filing)
    if not accounts:
        return []
    cases = (
        exception_selectors.case_list(tenant=tenant)
        .filter(account__in=accounts, first_seen_at__date__gte=filing.period_start)
        .exclude(status=CaseStatus.RESOLVED)
        .filter(Q(amount_at_stake__gt=threshold) | Q(amount_at_stake__lt=-threshold))
        .order_by("pk")
    )
    return [
        {
            "case_id": c.pk,
            "account": c.account,
            "amount_at_stake": str(c.amount_at_stake),
            "currency": c.currency,
            "status": c.status,
        }
        for c in cases
    ]


def subject_role(party_key: str, conducted_by: str, on_behalf_of: str, *, entity: bool) -> str | None:
    """The role ``party_key`` has in a transaction (filings.aggregation's rule, here for the
    accounts of each Part I): 50 own behalf (23 for an entity, which cannot conduct), 17 for
    another, 23 on whose behalf; None when not involved."""
    beneficiary = on_behalf_of or conducted_by
    if party_key == conducted_by != beneficiary:
        return "17"
    if party_key == conducted_by:
        return "23" if entity else "50"
    return "23" if party_key == beneficiary else None


def ctr_activities(*, filings: list[Filing]) -> list[CtrActivity]:
    """The generator's inputs for ``filings`` (in their order): sums are computed by PostgreSQL.

    Detail lines: the USD amount per FinCEN type (55 deposit, 56 withdrawal ...), foreign cash
    included; and per foreign currency its amount in that currency on a foreign cash in (53) or
    out (54) line with the issuing country (FinCEN's instruction: a foreign amount is recorded only
    there, rounded up to a whole unit; the USD equivalent goes under the type and the totals)."""
    ids = [f.pk for f in filings]
    lineage = FilingLineage.objects.filter(filing_id__in=ids)
    details, locations, accounts, facts = defaultdict(list), defaultdict(list), defaultdict(set), {}
    for row in (
        lineage.values("filing_id", "direction", code=F("transaction__detail_code"))
        .annotate(usd=Sum("amount_usd"))
        .order_by("filing_id", "direction", "code")
    ):
        details[row["filing_id"]].append((row["code"], row["direction"], row["usd"], ""))
    for row in (
        lineage.exclude(currency="USD")
        .values("filing_id", "direction", "currency")
        .annotate(amount=Sum("amount"))
        .order_by("filing_id", "direction", "currency")
    ):
        code = FOREIGN_CODES[row["direction"]]
        details[row["filing_id"]].append(
            (code, row["direction"], row["amount"], currency_country(row["currency"]))
        )
    branches = {b.code: b for b in Branch.objects.filter(tenant_id__in={f.tenant_id for f in filings})}
    for row in (
        lineage.values("filing_id", branch=F("transaction__branch_code"))
        .annotate(
            cash_in=Sum("amount_usd", filter=Q(direction="in")),
            cash_out=Sum("amount_usd", filter=Q(direction="out")),
        )
        .order_by("filing_id", "branch")
    ):
        b = branches[row["branch"]]
        locations[row["filing_id"]].append(
            Location(
                name=b.name,
                ein=b.ein,
                rssd=b.rssd,
                street=b.street,
                city=b.city,
                state=b.state,
                zip_code=b.zip_code,
                country=b.country,
                cash_in=row["cash_in"] or Decimal(0),
                cash_out=row["cash_out"] or Decimal(0),
            )
        )
    for row in (
        lineage.exclude(transaction__account="")
        .values(
            "filing_id",
            "direction",
            account=F("transaction__account"),
            conducted_by=F("transaction__conducted_by"),
            on_behalf_of=F("transaction__on_behalf_of"),
        )
        .distinct()
        .order_by()
    ):
        accounts[row["filing_id"]].add(
            (row["conducted_by"], row["on_behalf_of"], row["account"], row["direction"])
        )
    for row in lineage.values("filing_id").annotate(n=Count("id"), top=Max("amount_usd")).order_by():
        facts[row["filing_id"]] = (row["n"], row["top"])
    subjects = defaultdict(list)
    for s in (
        FilingSubject.objects.filter(filing_id__in=ids)
        .select_related("party_version")
        .order_by("filing_id", "pk")
    ):
        pv = s.party_version
        person = Person(**{f: getattr(pv, f) for f in _PERSON_FIELDS}) if pv else None
        subjects[s.filing_id].append(
            Subject(
                role=s.role,
                person=person,
                cash_in=s.cash_in,
                cash_out=s.cash_out,
                transactions=s.transactions,
                accounts=tuple(
                    sorted(
                        {
                            (account, direction)
                            for by, behalf, account, direction in accounts[s.filing_id]
                            if subject_role(s.party_key, by, behalf, entity=bool(pv and pv.is_entity))
                            == s.role
                        }
                    )
                ),
            )
        )
    return [
        CtrActivity(
            transaction_date=f.period_start,
            subjects=tuple(subjects[f.pk]),
            locations=tuple(locations[f.pk]),
            details=tuple(details[f.pk]),
            transactions=facts.get(f.pk, (0, 0))[0],
            max_single_usd=facts.get(f.pk, (0, Decimal(0)))[1],
            prior_bsa_id=f.prior_bsa_id,
        )
        for f in filings
    ]


_BRANCH_FIELDS = ("name", "ein", "rssd", "street", "city", "state", "zip_code", "country")


def sar_activities(*, filings: list[Filing]) -> list[SarActivity]:
    """The SAR generator's inputs for ``filings`` (in their order): each subject (the party version
    the draft holds) with the draft's accounts it transacted on, and the branches where the
    accounts' cash transactions of the activity period took place."""
    activities = []
    for f in filings:
        txns = CashTransaction.objects.filter(tenant_id=f.tenant_id, account__in=f.accounts, is_current=True)
        held = defaultdict(set)
        for account, conducted_by, on_behalf_of in txns.values_list(
            "account", "conducted_by", "on_behalf_of"
        ):
            held[conducted_by].add(account)
            held[on_behalf_of].add(account)
        codes = txns.filter(business_date__range=(f.period_start, f.period_end)).values("branch_code")
        branches = Branch.objects.filter(tenant_id=f.tenant_id, code__in=codes).order_by("code")
        subjects = [
            SarSubject(
                person=Person(**{n: getattr(s.party_version, n) for n in _PERSON_FIELDS})
                if s.party_version
                else None,
                accounts=tuple(sorted(held[s.party_key])),
            )
            for s in FilingSubject.objects.filter(filing=f).select_related("party_version").order_by("pk")
        ]
        activities.append(
            SarActivity(
                first=f.period_start,
                last=f.period_end,
                amount=f.amount_involved,
                subtypes=tuple(f.activity_subtypes),
                narrative=f.narrative,
                subjects=tuple(subjects),
                branches=tuple(Location(**{n: getattr(b, n) for n in _BRANCH_FIELDS}) for b in branches),
                prior_bsa_id=f.prior_bsa_id,
                amends=f.parent_id is not None,
                other_texts=dict(f.activity_other_texts),
            )
        )
    return activities
