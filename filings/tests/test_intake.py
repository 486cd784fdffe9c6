"""Parties and cash transactions in: every row accepted or rejected with its reason, a file loaded
once, amendments as versions."""

import pytest

from filings import intake
from filings.models import CashTransaction, IntakeRejection, PartyVersion
from filings.tests.factories import LOADER, PARTIES, cash, load_cash, load_parties
from jfintech.common.errors import ApplicationError

CSV = (
    "txn,date,branch,dir,amount,ccy,acct,who,for\n"
    "T1,2026-11-20,MAIN,in,6000.00,USD,ACC-1,C-1,\n"
    "T2,2026-11-31,MAIN,in,1.00,USD,ACC-1,C-1,\n"  # no such date
    "T3,2026-11-20,MAIN,up,1.00,USD,ACC-1,C-1,\n"
    "T4,2026-11-20,MAIN,in,12abc,USD,ACC-1,C-1,\n"
    "T5,2026-11-20,MAIN,in,5.00,XXY,ACC-1,C-1,\n"
    "T6,2026-11-20,NOWHERE,in,5.00,USD,ACC-1,C-1,\n"
    "T7,2026-11-20,MAIN,in\n"
    "T1,2026-11-20,MAIN,in,7000.00,USD,ACC-1,C-1,\n"  # repeated in the file
    "T8,2026-11-20,EAST,out,250.00,EUR,ACC-2,C-2,C-3\n"
)
COLUMNS = {
    "external_id": "txn",
    "business_date": "date",
    "branch_code": "branch",
    "direction": "dir",
    "amount": "amount",
    "currency": "ccy",
    "account": "acct",
    "conducted_by": "who",
    "on_behalf_of": "for",
}


def test_csv_rows_accepted_or_rejected_with_reasons_and_line_numbers(configured):
    batch = intake.intake_csv(
        tenant=configured, actor=LOADER, kind="cash_transaction", data=CSV.encode(), columns=COLUMNS
    )
    assert (batch.status, batch.rows_total, batch.rows_accepted, batch.rows_rejected) == ("loaded", 9, 2, 7)
    reasons = dict(IntakeRejection.objects.filter(batch=batch).values_list("line_no", "reason"))
    assert reasons == {
        3: "malformed_date",
        4: "malformed_direction",
        5: "malformed_amount",
        6: "unknown_currency",
        7: "unknown_branch",
        8: "malformed_row",
        9: "duplicate_key",
    }
    t8 = CashTransaction.objects.get(external_id="T8")
    assert (t8.on_behalf_of, t8.detail_code, t8.currency) == ("C-3", "56", "EUR")


def test_the_same_file_twice_is_a_duplicate_batch(configured):
    first = intake.intake_csv(
        tenant=configured, actor=LOADER, kind="cash_transaction", data=CSV.encode(), columns=COLUMNS
    )
    again = intake.intake_csv(
        tenant=configured, actor=LOADER, kind="cash_transaction", data=CSV.encode(), columns=COLUMNS
    )
    assert (again.status, again.duplicate_of_id) == ("duplicate", first.pk)
    assert CashTransaction.objects.count() == 2


def test_all_rows_rejected_is_a_rejected_batch(configured):
    batch = load_cash(configured, [cash("T1", "-5")])
    assert (batch.status, batch.rows_rejected) == ("rejected", 1)


def test_amendments_version_and_stale_versions_are_refused(configured):
    load_cash(configured, [cash("T1", "100", version="1")])
    batch = load_cash(configured, [cash("T1", "200", version="2"), cash("T2", "5", version="1")])
    assert batch.rows_accepted == 2
    stale = load_cash(configured, [cash("T1", "300", version="2")])
    assert (stale.status, stale.rejections.get().reason) == ("rejected", "duplicate_key")
    current = CashTransaction.objects.get(external_id="T1", is_current=True)
    assert (current.version, str(current.amount)) == (2, "200.000000")


def test_party_changes_are_new_versions_identical_rows_are_not(configured):  # PARTIES loaded by `configured`
    load_parties(configured, [{**PARTIES[0], "occupation": "Joiner"}, PARTIES[1]])
    versions = PartyVersion.objects.filter(party_key="C-1").order_by("version")
    assert [(v.version, v.is_current, v.occupation) for v in versions] == [
        (1, False, "Carpenter"),
        (2, True, "Joiner"),
    ]
    assert PartyVersion.objects.filter(party_key="C-2").count() == 1


def test_integration_role_may_load_an_analyst_may_not(configured):
    from filings.tests.factories import member
    from jfintech.audit import Actor
    from jfintech.tenancy.models import Role

    analyst = Actor.for_user(member(configured, Role.ANALYST, username="ana2"))
    with pytest.raises(ApplicationError) as exc:
        intake.intake_push(tenant=configured, actor=analyst, kind="party", records=[])
    assert exc.value.code == "permission_denied"


def test_apply_config_filings_section_is_validated_whole_and_idempotent(tenant):
    from filings.models import Branch, FilingInstitution
    from filings.tests.factories import BRANCHES, INSTITUTION
    from reconciliation.ingestion.config_file import ConfigError, config_apply

    inst = {k: str(v) for k, v in INSTITUTION.items()}
    doc = {
        "version": 1,
        "tenant": tenant.slug,
        "filings": {
            "institution": inst,
            "branches": BRANCHES,
            "fx_rates": [
                {"currency": "EUR", "business_date": "2026-11-20", "usd_per_unit": "1.1", "source": "ECB"}
            ],
        },
    }
    assert config_apply(document=doc, actor=LOADER)["filings"] == {"created": 4, "updated": 0, "unchanged": 0}
    assert config_apply(document=doc, actor=LOADER)["filings"] == {"created": 0, "updated": 0, "unchanged": 4}
    bad = {
        **doc,
        "filings": {
            "branches": [{"code": "X"}],
            "fx_rates": [{"currency": "EUR", "business_date": "nope", "usd_per_unit": "1", "source": "s"}],
        },
    }
    with pytest.raises(ConfigError) as exc:
        config_apply(document=bad, actor=LOADER)
    assert any("branches[0].name" in e for e in exc.value.errors)
    assert any("fx_rates[0].business_date" in e for e in exc.value.errors)
    assert (FilingInstitution.objects.count(), Branch.objects.count()) == (1, 2)
