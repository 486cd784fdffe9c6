"""`make demo` prints credentials; the admin must accept exactly what it printed."""

import io
import logging
import re

import pytest
from django.core.management import call_command

# seed_demo runs as a command in autocommit (ingestion creates partitions on its own connection),
# so the test commits too rather than wrapping it in one long transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_prints_superuser_credentials_the_admin_accepts(client, caplog):
    out = io.StringIO()
    with caplog.at_level(logging.ERROR):
        call_command("seed_demo", stdout=out)
    # The seeded failed run is logged at error level: the line says it is demo data.
    errors = [r.msg for r in caplog.records if r.levelno >= logging.ERROR and isinstance(r.msg, dict)]
    assert any(e.get("event") == "case_opened_for_failed_run" for e in errors), errors
    assert all(e.get("demo_data") for e in errors), errors
    username, password = re.search(r"demo superuser: (\S+) / (\S+)", out.getvalue()).groups()

    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_seed_demo_keeps_the_passwords_across_restarts_and_replaces_a_changed_one(client):
    from django.contrib.auth import get_user_model

    from jfintech.demo import login_block

    first, second = io.StringIO(), io.StringIO()
    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)
    logins = dict(re.findall(r"demo (?:superuser|\w+): (\S+) / (\S+)", first.getvalue()))
    assert set(logins) == {"admin", "demo-analyst", "demo-approver", "demo-admin"}
    assert dict(re.findall(r"demo (?:superuser|\w+): (\S+) / (\S+)", second.getvalue())) == logins
    for username, password in logins.items():
        assert client.login(username=username, password=password), username
        assert f"{username} / {password}" in login_block()  # what serve prints after READY
    # Someone changed a password in the admin: the next start prints a new one that works.
    analyst = get_user_model().objects.get(username="demo-analyst")
    analyst.set_password("changed-by-hand")
    analyst.save()
    third = io.StringIO()
    call_command("seed_demo", stdout=third)
    fresh = re.search(r"demo analyst: demo-analyst / (\S+)", third.getvalue()).group(1)
    assert fresh != logins["demo-analyst"]
    assert client.login(username="demo-analyst", password=fresh)
