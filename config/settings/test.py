"""Test settings: real PostgreSQL and Redis (embedded ones when none is configured)."""

import os
import tempfile
import uuid
from pathlib import Path

from jfintech import devservices

devservices.export_missing()
# A short visibility timeout so redelivery tests do not wait an hour; set before base reads it.
os.environ.setdefault("CELERY_VISIBILITY_TIMEOUT", "30")
os.environ.setdefault("CELERY_TASK_TIME_LIMIT", "25")
os.environ.setdefault("CELERY_TASK_SOFT_TIME_LIMIT", "20")
# A heartbeat every second, so a test can let one go stale in a few (RUN_STALE_HEARTBEAT_SECONDS).
os.environ.setdefault("RUN_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("RUN_STALE_HEARTBEAT_SECONDS", "10")
# Every test session (and xdist worker) gets private broker and result keys on a shared Redis;
# the worker subprocesses it starts inherit this, so sessions never consume each other's tasks.
os.environ.setdefault("CELERY_KEY_PREFIX", f"jftest-{uuid.uuid4().hex[:10]}:")

from config.settings.base import *  # noqa: E402,F403

# Tests never read or overwrite the checkout's demo passwords (make demo's).
DEMO_CREDENTIALS_FILE = Path(tempfile.mkdtemp(prefix="jftest-demo-")) / "demo-credentials.json"
SECRET_KEY = "test-only-not-secret"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
ALLOWED_HOSTS = ["*"]
WHITENOISE_USE_FINDERS = True  # browser tests see a styled admin without collectstatic
STATIC_ROOT = None
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# A fixed, well-known key: audit chains written here prove nothing outside this machine.
AUDIT_HMAC_KEY = AUDIT_HMAC_KEY or "test-only-audit-key"  # noqa: F405
