"""The compliance desk in the admin: the workflow actions call the services (four eyes holds), the
deadline filter, the rule catalog page; and the approval path in a real Chromium."""

import pytest
from django.test import Client

from filings import sar
from filings.models import Filing
from filings.tests.sar_data import prepare_sar
from filings.tests.workflow import People, to_pending
from filings.validation import catalog
from jfintech.tenancy.models import Membership

S = Filing.Status


@pytest.fixture
def staff(configured):
    people = People(configured)
    for user in (people.analyst_user, people.approver_user, people.admin_user):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return people


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _action(client, action, ids):
    return client.post("/admin/filings/filing/", {"action": action, "_selected_action": ids}, follow=True)


def test_admin_actions_move_filings_and_four_eyes_holds(configured, staff):
    filings = to_pending(configured, staff)  # prepared and validated by ana
    ids = [f.pk for f in filings]
    # ana becomes an approver: the approve action is offered, the service refuses her own filings.
    Membership.objects.filter(user=staff.analyst_user).update(role="approver")
    page = _action(_client(staff.analyst_user), "approve", ids)
    assert "Four eyes" in page.content.decode()
    assert set(Filing.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.PENDING_APPROVAL}
    page = _action(_client(staff.approver_user), "approve", ids)
    assert set(Filing.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.APPROVED}
    page = _action(_client(staff.analyst_user), "package", ids)
    assert "Package " in page.content.decode()
    assert set(Filing.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.PACKAGED}


def test_a_sar_through_the_admin_actions(configured, staff):
    filing = prepare_sar(configured, staff.analyst)
    _action(_client(staff.analyst_user), "validate", [filing.pk])
    _action(_client(staff.analyst_user), "request_approval", [filing.pk])
    _action(_client(staff.approver_user), "approve", [filing.pk])
    page = _action(_client(staff.analyst_user), "package", [filing.pk])
    assert "Package " in page.content.decode()
    filing.refresh_from_db()
    assert (filing.status, filing.approver, filing.package.kind) == (S.PACKAGED, "abe", "sar")


def test_the_filing_page_shows_the_other_codes_descriptions(configured, staff):
    filing = prepare_sar(configured, staff.analyst)
    sar.sar_update(
        tenant=configured,
        actor=staff.analyst,
        filing_id=filing.pk,
        activity_subtypes=["114", "1999"],
        activity_other_texts={"1999": "Cash split across two branches"},
    )
    page = _client(staff.analyst_user).get(f"/admin/filings/filing/{filing.pk}/change/").content.decode()
    assert "Cash split across two branches" in page


def test_deadline_filter_and_rule_catalog_page(configured, staff):
    filings = to_pending(configured, staff)
    Filing.objects.filter(pk=filings[0].pk).update(due_date="2020-01-01")
    client = _client(staff.approver_user)
    page = client.get("/admin/filings/filing/?deadline=overdue").content.decode()
    assert f"/admin/filings/filing/{filings[0].pk}/change/" in page
    assert f"/admin/filings/filing/{filings[1].pk}/change/" not in page
    rules = client.get("/admin/filings/filing/rules/").content.decode()
    assert all(code in rules for code in catalog().rules)  # the SAR rules too
    assert "TotalAmount must equal" in rules
    detail = client.get(f"/admin/filings/filing/{filings[0].pk}/change/").content.decode()
    assert "T1 v1" in detail  # the lineage inline: the transactions the amounts come from
    assert "CTR-001" not in detail  # no violations stored on a valid filing


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_approval_path_in_a_real_browser(gunicorn, configured, staff, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    from exceptions.tests.test_browser import ARTIFACTS, CHROMIUM_ARGS

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    filings = to_pending(configured, staff)
    base = gunicorn.extra["url"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            for username in ("ana", "abe"):
                page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
                page.goto(f"{base}/admin/login/?next=/admin/filings/filing/")
                page.fill("#id_username", username)
                page.fill("#id_password", "pw")
                page.click("input[type=submit]")
                page.wait_for_url("**/admin/filings/filing/")
                options = page.locator("select[name=action] option").all_text_contents()
                if username == "ana":  # the analyst is offered no approval
                    assert not any(o.startswith("Approve") for o in options)
                    continue
                page.get_by_role("link", name="Pending Approval").click()
                expect(page.locator("#result_list tbody tr")).to_have_count(2)
                page.check("#action-toggle")
                page.select_option("select[name=action]", "approve")
                page.click("button[name=index]")
                expect(page.locator(".messagelist")).to_contain_text(f"Filing {filings[0].pk}: approved.")
                page.screenshot(path=str(ARTIFACTS / "filings-approved.png"), full_page=True)
        finally:
            browser.close()
    assert set(Filing.objects.filter(tenant=configured).values_list("approver", flat=True)) == {"abe"}


def test_readiness_gate_override_in_the_admin(configured, staff):
    from filings.tests.test_workflow import _open_break

    filing = to_pending(configured, staff)[0]  # C-1, account ACC-1
    _open_break(configured, "ACC-1", "900.00")
    client = _client(staff.approver_user)
    page = client.get(f"/admin/filings/filing/{filing.pk}/approve/").content.decode()
    assert "900.000000 USD" in page
    refused = client.post(f"/admin/filings/filing/{filing.pk}/approve/", {"reason": "timing"}, follow=True)
    assert "1 open break(s) above 100.000000" in refused.content.decode()  # the service's refusal
    assert Filing.objects.get(pk=filing.pk).status == S.PENDING_APPROVAL
    from exceptions.models import Case

    case = Case.objects.get(tenant=configured, account="ACC-1")
    client.post(f"/admin/filings/filing/{filing.pk}/approve/", {"override": [case.pk], "reason": "timing"})
    filing.refresh_from_db()
    assert (filing.status, filing.gate_override["breaks"][0]["case_id"]) == (S.APPROVED, case.pk)
    # The analyst may not open the approval page at all.
    assert _client(staff.analyst_user).get(f"/admin/filings/filing/{filing.pk}/approve/").status_code == 403


def test_acknowledgement_upload_in_the_admin(configured, staff):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from filings.tests.workflow import ack_xml, activity_seqnums, to_submitted

    filings, package = to_submitted(configured, staff)
    seqs = activity_seqnums(package)
    ack = ack_xml({seqs[0]: ("31000000000021", []), seqs[1]: ("31000000000022", [("FATAL", "C2", "X")])})
    client = _client(staff.admin_user)
    client.post(
        f"/admin/filings/package/{package.pk}/acknowledge/",
        {"file": SimpleUploadedFile("ack.xml", ack, content_type="application/xml")},
    )
    a, b = (Filing.objects.get(pk=f.pk) for f in filings)
    assert (a.status, a.bsa_id) == (S.ACCEPTED, "31000000000021")
    assert (b.status, b.errors[0]["code"]) == (S.DRAFT, "C2")
    assert (
        _client(staff.analyst_user).get(f"/admin/filings/package/{package.pk}/acknowledge/").status_code
        == 403
    )
