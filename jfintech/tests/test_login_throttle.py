"""Admin login throttling (issue 19): repeated failures lock the username for a while, audited."""

import pytest

from jfintech.audit.models import AuditEvent
from jfintech.login_throttle import _key, _redis
from jfintech.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-passphrase-19"


@pytest.fixture
def staff(settings):
    settings.LOGIN_MAX_FAILURES = 3
    user = UserFactory(username="locky", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    _redis().delete(_key("locky"))
    yield user
    _redis().delete(_key("locky"))


def login(client, username, password):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def test_repeated_failures_lock_the_username_even_for_the_right_password_and_are_audited(client, staff):
    for _ in range(2):
        assert login(client, "locky", "wrong").status_code == 200  # the form again, with its error
    assert not AuditEvent.objects.filter(action="auth.login_locked").exists()
    assert login(client, "LOCKY", "wrong").status_code == 200  # the third, whatever the case
    event = AuditEvent.objects.get(action="auth.login_locked")
    assert (event.tenant_id, event.object_id, event.after["failures"]) == (None, "LOCKY", 3)
    assert PASSWORD not in str(event.after)
    refused = login(client, "locky", PASSWORD)
    assert refused.status_code == 200
    assert "_auth_user_id" not in client.session
    assert 0 < _redis().ttl(_key("locky")) <= 900

    _redis().delete(_key("locky"))  # the lockout period has passed
    assert login(client, "locky", PASSWORD).status_code == 302


def test_a_successful_login_clears_the_failures(client, staff):
    for _ in range(2):
        login(client, "locky", "wrong")
    assert login(client, "locky", PASSWORD).status_code == 302
    assert _redis().get(_key("locky")) is None
