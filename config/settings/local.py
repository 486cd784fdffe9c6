"""Developer and demo settings. Starts embedded PostgreSQL/Redis when none is configured."""

from jfintech import devservices

devservices.export_missing()

from config.settings.base import *  # noqa: E402,F403
from config.settings.base import env  # noqa: E402

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "local-development-only-not-secret"  # noqa: F405
# Serve static files straight from the apps (no collectstatic step for the demo).
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# A fixed, well-known key: audit chains written here prove nothing outside this machine.
AUDIT_HMAC_KEY = AUDIT_HMAC_KEY or "local-development-only-audit-key"  # noqa: F405
