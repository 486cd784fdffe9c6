"""Settings shared by every environment; everything variable comes from the environment."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
# Kubernetes probes and Prometheus scrapes send the pod's IP as Host (the chart sets POD_IP).
if env("POD_IP", default=""):
    ALLOWED_HOSTS.append(env("POD_IP"))
SERVICE_NAME = env("OTEL_SERVICE_NAME", default="jfintech")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us: /api/docs/ works offline
    "django_celery_beat",
    "django_prometheus",
    # Before django_structlog: jfintech instruments Celery first, so the task span is current
    # when django-structlog logs "task_started" (signal receivers run in connection order).
    "jfintech",
    "django_structlog",
    "reconciliation",
    "exceptions",
    "reporting",
    "filings",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from gunicorn itself (no separate web server in the pod).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Django's, except that it never redirects a POST to an API path lacking its slash (docs/api.md).
    "jfintech.api.exceptions.ApiCommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After authentication so that user_id is bound; binds request_id for every log line.
    "django_structlog.middlewares.RequestMiddleware",
    # Inside the previous one, so an error it rewrites under /api/ still has its request_id.
    "jfintech.api.exceptions.ApiErrorMiddleware",
    # Refuses NUL bytes and out-of-range ids in paths and query strings (jfintech/api/boundary.py).
    "jfintech.api.boundary.InputBoundaryMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# A CSRF failure under /api/ answers the API's error shape (code csrf_failed); Django's page elsewhere.
CSRF_FAILURE_VIEW = "jfintech.api.exceptions.csrf_failure"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# django-prometheus' backend wrapper counts queries and errors per connection alias; ours adds
# pre-commit hooks (the audit chain is linked right before COMMIT: docs/audit.md).
DATABASES = {"default": env.db_url("DATABASE_URL", engine="jfintech.db.backends.postgresql")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"]["connect_timeout"] = env.int("DB_CONNECT_TIMEOUT", default=5)
# The engine and the staged ingestion path work in TEMP tables of up to millions of rows; with
# PostgreSQL's default 8MB of local buffers they spill to the OS at every step (measured: the 1M
# two-way run's scope load 6.6 s → 5.4 s at 512MB). A ceiling per session, taken only when used.
_session_options = f"-c temp_buffers={env.str('DB_TEMP_BUFFERS', default='256MB')}"
DATABASES["default"]["OPTIONS"]["options"] = " ".join(
    filter(None, [DATABASES["default"]["OPTIONS"].get("options", ""), _session_options])
)
# Django's psycopg pool, for the web process only: Celery 5.7's Django fixup closes a pool after
# every task (celery#10554), so workers keep persistent single connections instead.
if env.bool("DB_POOL", default=False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=2),
        "max_size": env.int("DB_POOL_MAX", default=10),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        "name": "default",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Login throttling (jfintech/login_throttle.py): this many failures for one username lock it for
# LOGIN_LOCKOUT_SECONDS (audited as auth.login_locked).
AUTHENTICATION_BACKENDS = ["jfintech.login_throttle.ThrottledModelBackend"]
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=1200)  # 0: no limit
# Admission control (jfintech/api/admission.py): an API endpoint that enqueues on a queue answers
# 503 queue_full with Retry-After while the queue holds this many messages (0: no limit); per-queue
# overrides as "reconciliation=200,fetch=500"; the depth is read at most once per cache period.
API_QUEUE_DEPTH_LIMIT = env.int("API_QUEUE_DEPTH_LIMIT", default=1000)
API_QUEUE_DEPTH_LIMITS = {q: int(n) for q, n in env.dict("API_QUEUE_DEPTH_LIMITS", default={}).items()}
API_QUEUE_DEPTH_CACHE_SECONDS = env.float("API_QUEUE_DEPTH_CACHE_SECONDS", default=1.0)
API_QUEUE_FULL_RETRY_AFTER = env.int("API_QUEUE_FULL_RETRY_AFTER", default=15)
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# Only the production image runs collectstatic; local and test serve from the apps' folders.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Scheduled reports are emailed through Django's backend (docs/reporting.md): EMAIL_URL, e.g.
# smtp+tls://user:password@smtp.example:587 (django-environ); the sender is REPORT_FROM_EMAIL.
vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))
DEFAULT_FROM_EMAIL = env("REPORT_FROM_EMAIL", default="reports@jfintech.invalid")

# --- Redis and Celery -----------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")
# The broker redelivers an unacknowledged task after the visibility timeout; a task's hard time
# limit must be below it, or a slow task would run twice. Set in broker, result backend and app.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=CELERY_VISIBILITY_TIMEOUT - 300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=CELERY_TASK_TIME_LIMIT - 60)
CELERY_KEY_PREFIX = env("CELERY_KEY_PREFIX", default="")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
if CELERY_KEY_PREFIX:
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = CELERY_KEY_PREFIX
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS["global_keyprefix"] = CELERY_KEY_PREFIX
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES_NAMES = ["default", "ingest", "reconciliation", "fetch"]
# Each task's queue, by task name (Celery's `queue=` task attribute is deprecated). A queue given
# when sending (`.set(queue=...)`, `signature(..., queue=...)`: a test's private worker, a run's
# chord) still wins over this table. A task not listed goes to "default"; the table and the
# registered tasks are compared by jfintech/tests/test_celery_routes.py.
CELERY_TASK_ROUTES = {
    **{
        f"reconciliation.{name}": {"queue": "fetch"}
        for name in ("fetch_positions", "fetch_trades", "fetch_settlements", "fetch_left", "fetch_right")
    },
    **{
        f"reconciliation.{name}": {"queue": "reconciliation"}
        for name in (
            "compute_reconciliation",
            "run_failed",
            "reap_stuck_runs",
            "start_scheduled_run",
            "execute_simulation",
            "match_shard",
            "finish_sharded_run",
        )
    },
    **{
        name: {"queue": "default"}
        for name in (
            "api.purge_idempotency_keys",
            "audit.verify_chains",
            "exceptions.deliver_webhook",
            "exceptions.flag_sla_breaches",
            "ingestion.ensure_partitions_ahead",
            "ingestion.fail_abandoned_batches",
            "reporting.deliver_report",
            "reporting.generate_subscription",
            "reporting.run_export",
            "filings.remind_deadlines",
        )
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- REST framework and OpenAPI ---------------------------------------------------------------
REST_FRAMEWORK = {
    # The API key first: DRF takes the 401 challenge (WWW-Authenticate) from the first class, so a
    # caller without credentials gets 401 `Api-Key realm="api"`; one without the right gets 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jfintech.api.authentication.ApiKeyAuthentication",
        "jfintech.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The API speaks JSON (the file upload declares multipart itself), behind the input boundary:
    # no NUL byte, integer beyond bigint or NaN in any body (jfintech/api/boundary.py).
    "DEFAULT_PARSER_CLASSES": ["jfintech.api.boundary.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # 429 with Retry-After beyond API_RATE_LIMIT_PER_MINUTE per API key (jfintech/api/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["jfintech.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "jfintech.api.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "jfintech.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "jfintech.api.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "JFIntech operations platform API",
    "DESCRIPTION": "Reconciliation, exception management, reporting and filing preparation.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # From the installed drf-spectacular-sidecar, never a CDN: the docs work offline and behind a proxy.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would send the schema's URL to validator.swagger.io for a badge: nothing leaves.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # One name per choice set that several serializers share, instead of hashed names (Status6f3Enum).
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "exceptions.models.CaseStatus",
        "CaseBreakTypeEnum": "exceptions.models.BreakType",
        "ApprovalKindEnum": "exceptions.models.ApprovalKind",
        "RunBreakTypeEnum": "reconciliation.runs.models.BreakType",
        "DefinitionKindEnum": "reconciliation.runs.models.DefinitionKind",
        # A simulation's and a pipeline check's status are the same three values.
        "JobStatusEnum": "reconciliation.matching.models.SimulationStatus",
        "FilingKindEnum": "filings.models.Filing.Kind",
        "FilingStatusEnum": "filings.models.Filing.Status",
        "SubscribableReportEnum": "reporting.services.SUBSCRIBABLE",
        "SubscriptionFormatEnum": "reporting.services.SUBSCRIPTION_FORMATS",
    },
}

# --- Observability ------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="json")  # "console" for a human at a terminal
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False
OTEL_TRACES_EXPORTER = env("OTEL_TRACES_EXPORTER", default="none")  # otlp | console | file | none
OTEL_EXPORTER_FILE_DIR = env("OTEL_EXPORTER_FILE_DIR", default="")
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
PROMETHEUS_EXPORT_MIGRATIONS = False
# Links from a trace id in the admin to the tracing and log backends ({trace_id} placeholder):
# the admin's "trace" and "logs" links (docs/runbook.md). Empty: the id alone is shown.
TRACE_URL_TEMPLATE = env("TRACE_URL_TEMPLATE", default="")
LOGS_URL_TEMPLATE = env("LOGS_URL_TEMPLATE", default="")
# Global metrics computed at scrape time by ONE process, beat, on BEAT_METRICS_PORT (never per pod:
# docs/observability.md). Dotted paths, so the core imports no domain app.
PLATFORM_METRICS_COLLECTORS = [
    "jfintech.observability.platform.QueueCollector",
    "reporting.metrics.RunsAndCasesCollector",
    "jfintech.observability.pgstats.PgStatStatementsCollector",
]
HEALTH_CHECK_TIMEOUT_S = env.float("HEALTH_CHECK_TIMEOUT_S", default=2.0)

from jfintech.observability.logging import build_logging_config  # noqa: E402

LOGGING = build_logging_config(LOG_LEVEL, LOG_FORMAT)

# --- Tenancy, audit and idempotency (docs/tenancy.md, docs/audit.md) -----------------------------
# The key that signs each tenant's audit chain head. Never stored in the database; production
# refuses to start without it. AUDIT_HMAC_PREVIOUS_KEYS verifies events signed before a rotation.
AUDIT_HMAC_KEY = env("AUDIT_HMAC_KEY", default="")
AUDIT_HMAC_PREVIOUS_KEYS = env.list("AUDIT_HMAC_PREVIOUS_KEYS", default=[])
# The database role the application runs as in production: DML on every table, never TRUNCATE,
# and no UPDATE/DELETE on the audit trail. Created (NOLOGIN) by migration; grant it to the
# login role the web and workers use. Migrations run as the owner.
DB_RUNTIME_ROLE = env("DB_RUNTIME_ROLE", default="jfintech_runtime")
# How long a concurrent repeat of an in-flight idempotent POST waits before answering 409.
IDEMPOTENCY_WAIT_SECONDS = env.float("IDEMPOTENCY_WAIT_SECONDS", default=10.0)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48)

# Beat schedules, written to django-celery-beat after every migrate (jfintech.scheduling).
# Crontabs in UTC; expire_seconds drops a run that could not start in time instead of running late.
# Sharded runs (reconciliation.matching.sharding): above this many records in scope, the matching
# phase of a run whose rules never pair across accounts is split into this many shards.
RECON_SHARD_THRESHOLD = env.int("RECON_SHARD_THRESHOLD", default=200_000)
RECON_SHARD_COUNT = env.int("RECON_SHARD_COUNT", default=4)
# Stale runs (reconciliation.runs.lifecycle, docs/reconciliation.md "A worker that dies"): a run
# in flight writes its heartbeat every RUN_HEARTBEAT_SECONDS from a thread of its own, whatever
# phase it is in; the reaper re-drives a run whose heartbeat is older than
# RUN_STALE_HEARTBEAT_SECONDS (well below the broker's visibility timeout, which is what redelivers
# otherwise), until the run has been driven RUN_MAX_ATTEMPTS times; then it fails it, loudly.
# RUN_MAX_ATTEMPTS=1 turns re-drive off.
RUN_HEARTBEAT_SECONDS = env.float("RUN_HEARTBEAT_SECONDS", default=15.0)
RUN_STALE_HEARTBEAT_SECONDS = env.int("RUN_STALE_HEARTBEAT_SECONDS", default=120)
RUN_MAX_ATTEMPTS = env.int("RUN_MAX_ATTEMPTS", default=3)
if not RUN_HEARTBEAT_SECONDS * 4 <= RUN_STALE_HEARTBEAT_SECONDS < CELERY_VISIBILITY_TIMEOUT:
    raise ValueError(
        "RUN_STALE_HEARTBEAT_SECONDS must be at least 4 heartbeats and below CELERY_VISIBILITY_TIMEOUT"
    )

PERIODIC_TASKS = {
    "audit.verify_chains": {
        "task": "audit.verify_chains",
        "crontab": {"minute": "17", "hour": "3"},
        "queue": "default",
        "expire_seconds": 6 * 3600,
    },
    "api.purge_idempotency_keys": {
        "task": "api.purge_idempotency_keys",
        "crontab": {"minute": "23"},
        "queue": "default",
        "expire_seconds": 3000,
    },
    # Monthly record partitions for every tenant's window, ahead of the data (reconciliation.partitions).
    "ingestion.ensure_partitions_ahead": {
        "task": "ingestion.ensure_partitions_ahead",
        "crontab": {"minute": "41", "hour": "1"},
        "queue": "default",
        "expire_seconds": 6 * 3600,
    },
    # Closes as failed (code abandoned) the batches whose loading process died before closing them
    # (reconciliation.ingestion.services.batches_fail_abandoned).
    "ingestion.fail_abandoned_batches": {
        "task": "ingestion.fail_abandoned_batches",
        "crontab": {"minute": "*/5"},
        "queue": "default",
        "expire_seconds": 240,
    },
    # Flags unresolved break cases past their SLA due time (exceptions.services.cases_flag_sla_breaches).
    "exceptions.flag_sla_breaches": {
        "task": "exceptions.flag_sla_breaches",
        "crontab": {"minute": "*/5"},
        "queue": "default",
        "expire_seconds": 240,
    },
    # Fails reconciliation runs still in flight after their deadline, loudly, and re-drives runs
    # whose heartbeat went stale (reconciliation.runs.services.runs_reap, runs_redrive_stale).
    "reconciliation.reap_stuck_runs": {
        "task": "reconciliation.reap_stuck_runs",
        "crontab": {"minute": "*"},
        "queue": "reconciliation",
        "expire_seconds": 50,
    },
    # Reminds of filings due within 3 days and sets filings_overdue (filings.services.deadlines_remind).
    "filings.remind_deadlines": {
        "task": "filings.remind_deadlines",
        "crontab": {"minute": "7", "hour": "*/6"},
        "queue": "default",
        "expire_seconds": 3 * 3600,
    },
}

# --- Ingestion ----------------------------------------------------------------------------------
# Uploads over this size are refused with 413 before the body is read (docs/ingestion.md).
INGEST_MAX_UPLOAD_BYTES = env.int("INGEST_MAX_UPLOAD_BYTES", default=256 * 1024 * 1024)
# MT940, BAI2 and JSON documents are read whole by their parsers: a cap keeps memory bounded.
INGEST_MAX_WHOLE_FILE_BYTES = env.int("INGEST_MAX_WHOLE_FILE_BYTES", default=64 * 1024 * 1024)
# Currency codes accepted beyond ISO 4217's active ones (which exclude XXX and XTS), e.g. XTS in a
# test environment (reconciliation/ingestion/currencies.py).
INGEST_EXTRA_CURRENCIES = env.list("INGEST_EXTRA_CURRENCIES", default=[])

# `make demo` runs these in order (dotted paths, so the core never imports a domain app).
DEMO_SEEDERS = [
    "jfintech.demo.seed_superuser",
    "jfintech.tenancy.demo.seed_demo_tenant",
    "reconciliation.ingestion.demo.seed_ingestion_demo",
    "reconciliation.runs.demo.seed_recon_demo",
    "reporting.demo.seed_report_demo",
    "exceptions.demo.seed_demo_cases",
]
# The demo users' passwords, kept (mode 0600, in the checkout's local directory, never in git) so a
# restarted `make demo` logs in with the same ones; delete the file for fresh ones (jfintech/demo.py).
DEMO_CREDENTIALS_FILE = (
    Path(env("JFINTECH_LOCAL_DIR", default=str(BASE_DIR / ".local"))) / "demo-credentials.json"
)
