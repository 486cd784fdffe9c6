"""`make demo` prints credentials; the admin must accept exactly what it printed."""

import io
import re

import pytest
from django.core.management import call_command

# seed_demo runs as a command in autocommit (ingestion creates partitions on its own connection),
# so the test commits too rather than wrapping it in one long transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_prints_superuser_credentials_the_admin_accepts(client):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    username, password = re.search(r"demo superuser: (\S+) / (\S+)", out.getvalue()).groups()

    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_seed_demo_is_idempotent_and_rotates_the_password(client):
    first, second = io.StringIO(), io.StringIO()
    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)
    old = re.search(r"demo superuser: \S+ / (\S+)", first.getvalue()).group(1)
    assert not client.login(username="admin", password=old)
