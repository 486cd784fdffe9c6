"""No secret in any log line (issue 19): a full pipeline run — an admin logs in (once with a
wrong password), creates an API key over the API, the key pushes records, starts a run that real
workers reconcile, and reads its breaks and the desk — then every log the test process and the
workers wrote is searched for every secret the run created."""

import pytest
from rest_framework.test import APIClient

from jfintech.tenancy.models import Role
from jfintech.tests.factories import member
from reconciliation.runs.tests.factories import AS_OF, TenantFactory, definition, records, source_of
from reconciliation.runs.tests.test_surfaces import _terminal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

PASSWORD = "correct-horse-battery-staple-19"
WRONG_PASSWORD = "correct-horse-battery-stapel-19"  # a mistyped real password is a secret too


def test_a_full_run_logs_no_secret(client, celery_workers, capfd, caplog):
    logs_before = {name: w.log_path.stat().st_size for name, w in celery_workers.items()}
    defn = definition(TenantFactory(slug="secrets"), name="gl-vs-bank")
    records(source_of(defn, "left"), {"reference": "A", "amount": "1"}, {"reference": "B", "amount": "2"})
    records(source_of(defn, "right"), {"reference": "A", "amount": "1"})
    admin = member(defn.tenant, Role.ADMIN, username="secret-admin", is_staff=True)
    admin.set_password(PASSWORD)
    admin.save()

    assert (
        client.post(
            "/admin/login/?next=/admin/", {"username": "secret-admin", "password": WRONG_PASSWORD}
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/admin/login/?next=/admin/", {"username": "secret-admin", "password": PASSWORD}
        ).status_code
        == 302
    )
    created = client.post(
        "/api/v1/api-keys/",
        {"name": "erp", "role": Role.ADMIN},
        content_type="application/json",
        HTTP_X_TENANT="secrets",
    )
    assert created.status_code == 201, created.content
    plaintext = created.json()["key"]
    key = APIClient()
    key.credentials(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
    started = key.post(
        "/api/v1/reconciliation/runs/", {"definition": "gl-vs-bank", "as_of": AS_OF.isoformat()}
    )
    assert started.status_code == 202, started.content
    assert _terminal(started.json()["id"]).status == "completed"
    assert key.get(f"/api/v1/reconciliation/runs/{started.json()['id']}/breaks/").status_code == 200
    assert key.get("/api/v1/exceptions/cases/").status_code == 200
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION=f"Api-Key {plaintext}x")  # a wrong key is logged as a failure
    assert bad.get("/api/v1/exceptions/cases/").status_code == 401

    out, err = capfd.readouterr()
    logs = [out, err, caplog.text]
    for name, worker in celery_workers.items():
        with open(worker.log_path, "rb") as f:
            f.seek(logs_before[name])
            logs.append(f.read().decode(errors="replace"))
    text = "\n".join(logs)
    assert "run_completed" in text or "request_finished" in text  # the logs were captured
    secret_part = plaintext.split(".", 1)[1]
    for secret in (PASSWORD, WRONG_PASSWORD, plaintext, secret_part):
        assert secret not in text, f"a secret ({secret[:4]}…) is in the logs"
