"""One masking processor on every line; the run context on log lines and spans alike."""

import json
import logging

import pytest

from jfintech.observability import bind_run_context, business_span
from jfintech.observability.logging import get_logger
from jfintech.observability.masking import mask_sensitive
from jfintech.testing.processes import read_spans, wait_until

IBAN = "DE89370400440532013000"
IBAN_PRINTED = "DE89 3704 0044 0532 0130 00"


def mask(**fields):
    return mask_sensitive(None, None, fields)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"event": f"pay {IBAN} now"}, {"event": "pay DE****************3000 now"}),
        ({"event": f"to {IBAN_PRINTED}."}, {"event": "to DE****************3000."}),
        ({"note": "GB82WEST12345698765432"}, {"note": "GB****************5432"}),
        # Fails the mod-97 check: not an IBAN, left alone (a reference, an ISIN, ...).
        ({"reference": "XX12ABCDEFGHIJKLMNO"}, {"reference": "XX12ABCDEFGHIJKLMNO"}),
        ({"account": "ACC-12345678"}, {"account": "ACC-****5678"}),
        ({"account_number": 1234567890}, {"account_number": "******7890"}),
        ({"source.account_id": "CH-001-99887766"}, {"source.account_id": "CH-001-****7766"}),
        ({"card_number": "4111111111111111"}, {"card_number": "************1111"}),
        ({"counterparty_name": "John Smith"}, {"counterparty_name": "J*** S****"}),
        ({"email": "john.smith@bank.example"}, {"email": "j*********@bank.example"}),
        ({"event": "mail john.smith@bank.example"}, {"event": "mail j*********@bank.example"}),
        ({"nested": {"iban": "NL91ABNA0417164300", "rows": [{"payee": "Jane Doe"}]}},
         {"nested": {"iban": "NL************4300", "rows": [{"payee": "J*** D**"}]}}),
        # Ours, or not account-like: untouched.
        ({"recon.run_id": 12345678, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
         {"recon.run_id": 12345678, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}),
        ({"rows": 12345678, "discarded": 1234567, "company": "ACME 123456"},
         {"rows": 12345678, "discarded": 1234567, "company": "ACME 123456"}),
        ({"definition_name": "Bank vs ledger 12345678"}, {"definition_name": "Bank vs ledger 12345678"}),
    ],
)  # fmt: skip
def test_mask_sensitive(fields, expected):
    assert mask(**fields) == expected


def test_every_line_is_masked_by_the_real_formatter_including_library_lines_and_tracebacks(log_lines):
    log = get_logger("jfintech.tests.masking")
    log.info("payment_received", account=IBAN, counterparty_name="John Smith", amount="10.00")
    try:
        raise ValueError(f"duplicate key (iban)=({IBAN_PRINTED}) for john.smith@bank.example")
    except ValueError:
        logging.getLogger("psycopg").exception("library says %s", IBAN)

    records = log_lines()
    text = json.dumps(records)
    for secret in (IBAN, IBAN_PRINTED, "John Smith", "john.smith@"):
        assert secret not in text
    payment = next(r for r in records if r["event"] == "payment_received")
    assert payment["account"] == "DE****************3000"
    assert payment["amount"] == "10.00"
    library = next(r for r in records if r["logger"] == "psycopg")
    assert library["event"] == "library says DE****************3000"
    assert "DE****************3000" in library["exception"]
    assert library["error.type"] == "ValueError"
    assert {"timestamp", "level", "service.name"} <= set(library)


def test_run_context_reaches_log_lines_and_spans(observability_dir, log_lines):
    log = get_logger("jfintech.tests.context")
    with business_span("recon.test_run", run_id=41, definition="cash-vs-ledger") as outer:
        bind_run_context(run_id=41, definition="cash-vs-ledger", txn_type="statement")
        with business_span("recon.match_pass", txn_type="statement", **{"recon.pass": "exact_ref"}):
            log.info("pass_done", matched=3)
        with pytest.raises(KeyError), business_span("recon.failing_pass", txn_type="trade"):
            raise KeyError("boom")
        trace_id = format(outer.get_span_context().trace_id, "032x")

    line = next(r for r in log_lines() if r["event"] == "pass_done")
    assert line["recon.run_id"] == 41
    assert line["recon.definition"] == "cash-vs-ledger"
    assert line["txn.type"] == "statement"
    assert line["trace_id"] == trace_id

    def spans():
        found = {s["name"]: s for s in read_spans(observability_dir / "spans") if s["trace_id"] == trace_id}
        return found if {"recon.test_run", "recon.match_pass", "recon.failing_pass"} <= set(found) else None

    found = wait_until(spans, timeout=10)
    run, match, failing = found["recon.test_run"], found["recon.match_pass"], found["recon.failing_pass"]
    # bind_run_context set the attributes on the span that was current (the outer one).
    assert run["attributes"]["recon.run_id"] == "41"
    assert run["attributes"]["txn.type"] == "statement"
    assert match["parent_span_id"] == run["span_id"]
    assert match["attributes"]["recon.pass"] == "exact_ref"
    assert failing["status"] == "ERROR"
    assert failing["attributes"]["error.type"] == "KeyError"


@pytest.mark.django_db
def test_the_admin_shows_the_trace_id_with_links_to_the_trace_and_its_logs(admin_client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from jfintech.health.models import PipelineCheck

    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    settings.LOGS_URL_TEMPLATE = 'https://loki.example/explore?q=trace_id="{trace_id}"'
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    check = PipelineCheck.objects.create(deadline=timezone.now() + timedelta(minutes=1), trace_id=trace_id)

    page = admin_client.get(f"/admin/jfintech/pipelinecheck/{check.pk}/change/").content.decode()
    assert f'<code class="jf-trace-id">{trace_id}</code>' in page
    assert f'href="https://tempo.example/trace/{trace_id}"' in page
    assert "https://loki.example/explore?q=trace_id=&quot;" in page
    listing = admin_client.get("/admin/jfintech/pipelinecheck/").content.decode()
    assert trace_id in listing


@pytest.mark.django_db
def test_request_lines_name_the_tenant_once_the_api_resolved_it(client, log_lines, observability_dir):
    from jfintech.tests.factories import TenantFactory, member

    tenant = TenantFactory(slug="log-bank")
    client.force_login(member(tenant))
    response = client.get("/api/v1/tenant/", HTTP_X_TENANT="log-bank")
    assert response.status_code == 200, response.content

    finished = next(r for r in log_lines() if r["event"] == "request_finished")
    assert finished["tenant"] == "log-bank"
    assert {"request_id", "user_id", "trace_id", "service.name"} <= set(finished)
