"""SAR drafts: referred from break cases, edited by compliance with history, deadlines 30/60 days."""

from datetime import date
from decimal import Decimal

import pytest

from exceptions.models import Case
from filings import sar
from filings.models import Filing
from filings.tests.factories import cash, load_cash
from filings.tests.test_workflow import _open_break
from filings.tests.workflow import People
from filings.validation import activity_subtype_codes, other_activity_codes
from jfintech.common.errors import ApplicationError
from jfintech.tests.conftest import client_for
from jfintech.tests.test_api_errors import assert_error

OTHER = "1999"  # Structuring: Other
TEXT = "Cash left in night deposit bags"


@pytest.fixture
def people(configured):
    return People(configured)


def test_referral_collects_accounts_amount_and_subjects(configured, people):
    load_cash(configured, [cash("T1", "500", party="C-3", on_behalf_of="C-2", account="ACC-7")])
    _open_break(configured, "ACC-7", "9000.00")
    _open_break(configured, "ACC-7", "-1000.00")
    ids = list(Case.objects.filter(tenant=configured).values_list("pk", flat=True))
    filing = sar.sar_refer(
        tenant=configured, actor=people.analyst, case_ids=ids, detected_on=date(2026, 11, 20)
    )
    assert (filing.kind, filing.status, filing.accounts) == ("sar", "draft", ["ACC-7"])
    assert filing.amount_involved == Decimal("10000.00")
    assert sorted(filing.subjects.values_list("party_key", flat=True)) == ["C-2", "C-3"]
    assert filing.due_date == date(2026, 12, 20)  # 30 days: subjects are identified
    with pytest.raises(ApplicationError) as exc:
        sar.sar_refer(tenant=configured, actor=people.analyst, case_ids=ids[1:])
    assert exc.value.code == "already_referred"


def test_no_subject_means_60_days(configured, people):
    _open_break(configured, "ACC-NOBODY", "700.00")
    case_id = Case.objects.get(tenant=configured, account="ACC-NOBODY").pk
    filing = sar.sar_refer(
        tenant=configured, actor=people.analyst, case_ids=[case_id], detected_on=date(2026, 11, 1)
    )
    assert filing.due_date == date(2026, 12, 31)


def test_edits_are_checked_and_kept_as_history(configured, people):
    _open_break(configured, "ACC-1", "700.00")
    filing = sar.sar_refer(
        tenant=configured, actor=people.analyst, case_ids=[Case.objects.get(tenant=configured).pk]
    )
    with pytest.raises(ApplicationError) as exc:
        sar.sar_update(tenant=configured, actor=people.admin, filing_id=filing.pk, narrative="x" * 17001)
    assert exc.value.code == "narrative_too_long"
    with pytest.raises(ApplicationError) as exc:
        sar.sar_update(tenant=configured, actor=people.admin, filing_id=filing.pk, narrative="a\x00b")
    assert exc.value.code == "narrative_invalid"
    with pytest.raises(ApplicationError) as exc:
        sar.sar_update(
            tenant=configured, actor=people.admin, filing_id=filing.pk, activity_subtypes=["99999"]
        )
    assert exc.value.code == "invalid_activity_code"
    code = sorted(activity_subtype_codes())[0]
    sar.sar_update(
        tenant=configured,
        actor=people.admin,
        filing_id=filing.pk,
        narrative="x" * 17000,
        activity_subtypes=[code],
    )
    sar.sar_update(
        tenant=configured, actor=people.analyst, filing_id=filing.pk, narrative="Structuring at ACC-1."
    )
    history = list(sar.filing_history(filing=filing))
    assert [e.action for e in history] == ["filing.sar_refer", "filing.sar_update", "filing.sar_update"]
    assert history[-1].before["narrative"] == "x" * 17000
    assert history[-1].after["narrative"] == "Structuring at ACC-1."
    assert Filing.objects.get(pk=filing.pk).activity_subtypes == [code]


def test_refer_and_edit_through_the_api(configured, people):
    _open_break(configured, "ACC-1", "700.00")
    case_id = Case.objects.get(tenant=configured).pk
    ana = client_for(people.analyst_user, tenant_slug=configured.slug)
    made = ana.post(
        "/api/v1/filings/sar/refer/", {"case_ids": [case_id], "note": "structuring?"}, format="json"
    )
    assert made.status_code == 201, made.json()
    fid = made.json()["id"]
    edited = ana.post(
        f"/api/v1/filings/{fid}/sar/", {"narrative": "Cash just under 10k daily."}, format="json"
    )
    assert edited.json()["narrative"] == "Cash just under 10k daily."
    history = ana.get(f"/api/v1/filings/{fid}/history/").json()
    assert [h["action"] for h in history] == ["filing.sar_refer", "filing.sar_update"]


def test_the_other_codes_are_those_the_schema_annotates_other():
    # Checked against the XSD, not assumed: its "Other" annotations are exactly the x999 codes, and
    # 917 ("Counterfeit Instrument (other)") is a subtype of its own.
    assert other_activity_codes() == {c for c in activity_subtype_codes() if c.endswith("999")}
    assert len(other_activity_codes()) == 11
    assert "917" in activity_subtype_codes() - other_activity_codes()


@pytest.fixture
def draft(configured, people) -> Filing:
    _open_break(configured, "ACC-1", "700.00")
    case_id = Case.objects.get(tenant=configured).pk
    return sar.sar_refer(tenant=configured, actor=people.analyst, case_ids=[case_id])


def _described(text):
    return {"activity_subtypes": ["114", OTHER], "activity_other_texts": {OTHER: text}}


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        ({"activity_subtypes": ["114", OTHER]}, "invalid_activity_code"),  # undescribed
        (
            {"activity_subtypes": ["114", OTHER], "activity_other_texts": {OTHER: TEXT, "114": TEXT}},
            "invalid_activity_code",  # 114 is no "Other" code
        ),
        ({"activity_subtypes": ["114"], "activity_other_texts": {OTHER: TEXT}}, "invalid_activity_code"),
        ({"activity_other_texts": {"3999": TEXT}}, "invalid_activity_code"),  # not among the draft's
        (_described(""), "activity_text_invalid"),
        (_described("x" * 51), "activity_text_invalid"),
        (_described(" " + TEXT), "activity_text_invalid"),
        (_described(TEXT + " "), "activity_text_invalid"),
        (_described("Cash\tbags"), "activity_text_invalid"),
        (_described("Cash\r\nbags"), "activity_text_invalid"),
        (_described("Cash\x7fbags"), "activity_text_invalid"),
        ({"activity_other_texts": [OTHER, TEXT]}, "invalid"),
        ({"activity_other_texts": {OTHER: 7}}, "invalid"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else v,
)
def test_bad_other_descriptions_are_refused(configured, people, draft, edit, code):
    with pytest.raises(ApplicationError) as exc:
        sar.sar_update(tenant=configured, actor=people.analyst, filing_id=draft.pk, **edit)
    assert exc.value.code == code
    assert Filing.objects.get(pk=draft.pk).activity_other_texts == {}


def test_an_other_code_is_kept_with_its_description_in_the_history(configured, people, draft):
    sar.sar_update(tenant=configured, actor=people.analyst, filing_id=draft.pk, **_described(TEXT))
    filing = Filing.objects.get(pk=draft.pk)
    assert (filing.activity_subtypes, filing.activity_other_texts) == (["114", OTHER], {OTHER: TEXT})
    longest = "Cash  " + "x" * 44  # RestrictString50's most, an inner double space included
    sar.sar_update(
        tenant=configured, actor=people.analyst, filing_id=draft.pk, activity_other_texts={OTHER: longest}
    )
    # A code and its description go together.
    sar.sar_update(
        tenant=configured,
        actor=people.analyst,
        filing_id=draft.pk,
        activity_subtypes=["114"],
        activity_other_texts={},
    )
    history = list(sar.filing_history(filing=draft))
    assert [e.after["activity_other_texts"] for e in history] == [{}, {OTHER: TEXT}, {OTHER: longest}, {}]
    assert history[2].before["activity_other_texts"] == {OTHER: TEXT}


def test_other_descriptions_through_the_api(configured, people, draft):
    ana = client_for(people.analyst_user, tenant_slug=configured.slug)
    url = f"/api/v1/filings/{draft.pk}/sar/"
    edited = ana.post(url, _described(TEXT), format="json")
    assert edited.status_code == 200, edited.json()
    assert ana.get(f"/api/v1/filings/{draft.pk}/").json()["activity_other_texts"] == {OTHER: TEXT}
    for body, code in [
        ({"activity_other_texts": {OTHER: TEXT + " "}}, "activity_text_invalid"),  # refused, not trimmed
        ({"activity_other_texts": {OTHER: ""}}, "activity_text_invalid"),
        ({"activity_other_texts": {}}, "invalid_activity_code"),  # the draft's 1999 undescribed
        ({"activity_other_texts": {OTHER: "x" * 500}}, "invalid"),
        ({"activity_other_texts": {OTHER: None}}, "invalid"),
        ({"activity_other_texts": [OTHER, TEXT]}, "invalid"),
        ({"activity_other_texts": "1999: cash"}, "invalid"),
    ]:
        assert_error(ana.post(url, body, format="json"), 400, code)
    assert Filing.objects.get(pk=draft.pk).activity_other_texts == {OTHER: TEXT}
    history = ana.get(f"/api/v1/filings/{draft.pk}/history/").json()
    assert [h["action"] for h in history] == ["filing.sar_refer", "filing.sar_update"]
    assert (history[-1]["before"]["activity_other_texts"], history[-1]["after"]["activity_other_texts"]) == (
        {},
        {OTHER: TEXT},
    )
