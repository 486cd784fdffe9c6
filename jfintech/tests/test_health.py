import pytest
from django.test import override_settings

from jfintech.testing.processes import free_port

pytestmark = pytest.mark.django_db


def test_livez_answers_without_touching_dependencies(client):
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_postgres_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["checks"]["postgres"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"


def test_readyz_fails_fast_and_names_redis_when_it_is_unreachable(client):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", HEALTH_CHECK_TIMEOUT_S=0.5):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["postgres"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "error"
    assert "ConnectionError" in body["checks"]["redis"]["error"]
    assert body["checks"]["redis"]["duration_ms"] < 2000


def test_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")
    assert "/api/v1/health/pipeline-checks/" in response.json()["paths"]


def test_api_errors_have_the_standard_shape(client):
    response = client.post("/api/v1/health/pipeline-checks/")
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == "not_authenticated"
    assert error["request_id"]


def test_admin_static_files_are_served_by_the_app_itself(client):
    # gunicorn has no static file server in front of it in the pod; WhiteNoise serves the admin CSS.
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"body" in b"".join(response.streaming_content)
