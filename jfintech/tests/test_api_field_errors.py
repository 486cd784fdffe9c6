"""A 4xx for bad input names each field, the problem's stable code and a message (docs/api.md)."""

import pytest

from jfintech.tests.conftest import client_for
from jfintech.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root():
    return client_for(UserFactory(username="root", is_superuser=True, is_staff=True))


def _errors(response) -> dict:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    for item in error["details"]["errors"]:
        assert set(item) == {"field", "code", "message"}
        assert item["message"]
    return {(e["field"], e["code"]) for e in error["details"]["errors"]}


def test_a_serializer_error_names_field_and_code_including_nested_items(root):
    body = {
        "slug": "not a slug",
        "name": "x" * 201,
        "window_months_back": -1,
        "holidays": ["2026-12-25", "25/12"],
    }
    assert _errors(root.post("/api/v1/tenants/", body, format="json")) == {
        ("slug", "invalid"),
        ("name", "max_length"),
        ("window_months_back", "min_value"),
        ("holidays.1", "invalid"),
    }
    assert _errors(root.post("/api/v1/tenants/", {}, format="json")) == {
        ("slug", "required"),
        ("name", "required"),
    }


def test_a_model_validation_error_names_field_and_code(root):
    body = {"slug": "mars", "name": "Mars Bank", "timezone": "Mars/Olympus"}
    assert _errors(root.post("/api/v1/tenants/", body, format="json")) == {("timezone", "invalid_timezone")}
