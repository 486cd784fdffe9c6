"""Connectors: how a reconciliation's fetch gets a source's records for a window of dates.

``fetch_for_window(source=, date_from=, date_to=, actor=)`` (the contract with the recon helper)
reads ``source.connector``::

    {"type": "database"}                         # records are already loaded: nothing to do
    {"type": "http", "url": "http://upstream/trades", "params": {...}, "headers": {...},
     "connect_timeout_s": 3, "timeout_s": 10, "retries": 3, "backoff_s": 0.5, "backoff_max_s": 10,
     "breaker_threshold": 5, "breaker_cooldown_s": 60, "records_key": "records"}
    {"type": "directory", "path": "/data/drop/bank", "pattern": "*.xml", "format": "auto"}

HTTP and directory pulls go through the normal batch path, so every row is accepted or rejected
with a reason, and a re-pulled identical payload or file is a ``duplicate`` batch.

HTTP failures are loud: every failed attempt is logged and counted
(``connector_requests_total{connector, outcome}``); retries back off exponentially with full
jitter; a circuit breaker per source (state in Redis, shared by every worker) opens after
``breaker_threshold`` consecutive failed fetches and refuses calls for ``breaker_cooldown_s``
(``connector_circuit_open`` gauge), after which one trial call is let through.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import redis
import requests
from django.conf import settings

from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from reconciliation.ingestion import metrics, services
from reconciliation.models import DataSource, IngestionBatch

log = get_logger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class FetchResult:
    batch_id: int | None  # the last batch this fetch created (None when nothing was pulled)
    rows_loaded: int
    connector: str
    batch_ids: tuple[int, ...] = ()


class CircuitBreaker:
    """Consecutive-failure breaker per source, kept in Redis so every worker process shares it."""

    def __init__(self, source: DataSource, *, threshold: int, cooldown_s: float):
        self.source, self.threshold, self.cooldown_s = source, threshold, cooldown_s
        self.key = f"{settings.CELERY_KEY_PREFIX}jf:breaker:source:{source.pk}"
        self.redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)

    def check(self) -> None:
        opened_until = float(self.redis.hget(self.key, "opened_until") or 0)
        if opened_until > time.time():
            metrics.CONNECTOR_REQUESTS.labels(connector="http", outcome="circuit_open").inc()
            log.warning(
                "connector_circuit_refused",
                source_id=self.source.pk,
                retry_after_s=opened_until - time.time(),
            )
            raise ApplicationError(
                f"The circuit breaker for source {self.source.name} is open after repeated failures; "
                f"retry in {int(opened_until - time.time()) + 1}s.",
                code="circuit_open", status=503, extra={"retry_after_s": int(opened_until - time.time()) + 1},
            )  # fmt: skip

    def success(self) -> None:
        self.redis.delete(self.key)
        metrics.CIRCUIT_OPEN.labels(source_kind=self.source.kind).set(0)

    def failure(self) -> None:
        failures = self.redis.hincrby(self.key, "failures", 1)
        self.redis.expire(self.key, int(self.cooldown_s * 10) + 60)
        if failures >= self.threshold:
            self.redis.hset(self.key, "opened_until", time.time() + self.cooldown_s)
            metrics.CIRCUIT_OPEN.labels(source_kind=self.source.kind).set(1)
            log.error("connector_circuit_opened", source_id=self.source.pk, failures=failures,
                      cooldown_s=self.cooldown_s)  # fmt: skip


def _get_with_retries(source: DataSource, cfg: dict, params: dict) -> bytes:
    retries = int(cfg.get("retries", 3))
    backoff, backoff_max = float(cfg.get("backoff_s", 0.5)), float(cfg.get("backoff_max_s", 10))
    timeout = (float(cfg.get("connect_timeout_s", 3)), float(cfg.get("timeout_s", 10)))
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            # Full jitter: many workers retrying one upstream must not retry in lockstep.
            time.sleep(random.uniform(0, min(backoff_max, backoff * 2 ** (attempt - 1))))  # noqa: S311
        try:
            response = requests.get(
                cfg["url"], params=params, headers=cfg.get("headers") or {}, timeout=timeout
            )
        except requests.Timeout as exc:
            outcome, last_error, retryable = "timeout", f"timeout: {exc}", True
        except requests.ConnectionError as exc:
            outcome, last_error, retryable = "connection_error", f"connection error: {exc}", True
        else:
            if response.status_code < 400:
                metrics.CONNECTOR_REQUESTS.labels(connector="http", outcome="ok").inc()
                return response.content
            outcome, retryable = "http_error", response.status_code in RETRYABLE_STATUS
            last_error = f"HTTP {response.status_code}: {response.text[:200]}"
        metrics.CONNECTOR_REQUESTS.labels(connector="http", outcome=outcome).inc()
        log.warning(
            "connector_request_failed", connector="http", source_id=source.pk, attempt=attempt + 1,
            outcome=outcome, error=last_error[:500], will_retry=retryable and attempt < retries,
        )  # fmt: skip
        if not retryable:
            break
    raise ApplicationError(f"Fetching source {source.name} from {cfg['url']} failed: {last_error}",
                           code="connector_failed", status=502)  # fmt: skip


def _fetch_http(*, source, cfg, date_from, date_to, actor) -> FetchResult:
    if not cfg.get("url"):
        raise ApplicationError(
            f"Source {source.name}: the http connector needs a url.", code="invalid_connector"
        )
    breaker = CircuitBreaker(source, threshold=int(cfg.get("breaker_threshold", 5)),
                             cooldown_s=float(cfg.get("breaker_cooldown_s", 60)))  # fmt: skip
    breaker.check()
    params = {**(cfg.get("params") or {}), "date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
    try:
        body = _get_with_retries(source, cfg, params)
        try:
            document = json.loads(body, parse_float=Decimal)
        except ValueError as exc:
            metrics.CONNECTOR_REQUESTS.labels(connector="http", outcome="bad_payload").inc()
            raise ApplicationError(f"Source {source.name}: upstream answered with invalid JSON: {exc}",
                                   code="connector_failed", status=502) from exc  # fmt: skip
    except ApplicationError:
        breaker.failure()
        log.error("connector_fetch_failed", connector="http", source_id=source.pk, tenant=source.tenant.slug)
        raise
    breaker.success()
    records = document.get(cfg.get("records_key", "records")) if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise ApplicationError(f"Source {source.name}: upstream JSON has no list of records.",
                               code="connector_failed", status=502)  # fmt: skip
    batch = services.batch_ingest_records(
        tenant=source.tenant, actor=actor, source=source, records=records,
        file_name=f"{cfg['url']} {date_from}..{date_to}"[:255],
    )  # fmt: skip
    return FetchResult(batch.pk, batch.rows_accepted, "http", (batch.pk,))


def _fetch_directory(*, source, cfg, date_from, date_to, actor) -> FetchResult:
    """Every file in the drop directory, oldest name first; moved to processed/ or rejected/ after."""
    directory = Path(cfg.get("path", ""))
    if not cfg.get("path") or not directory.is_dir():
        metrics.CONNECTOR_REQUESTS.labels(connector="directory", outcome="error").inc()
        raise ApplicationError(f"Source {source.name}: drop directory {directory} does not exist.",
                               code="connector_failed", status=502)  # fmt: skip
    batches = []
    for path in sorted(p for p in directory.glob(cfg.get("pattern", "*")) if p.is_file()):
        batch = services.batch_ingest_file(tenant=source.tenant, actor=actor, source=source, path=path,
                                           format=cfg.get("format", "auto"))  # fmt: skip
        target = directory / ("rejected" if batch.status == IngestionBatch.Status.REJECTED else "processed")
        target.mkdir(exist_ok=True)
        shutil.move(str(path), target / f"{batch.pk}-{path.name}")
        metrics.CONNECTOR_REQUESTS.labels(connector="directory", outcome="ok").inc()
        batches.append(batch)
    return FetchResult(
        batches[-1].pk if batches else None,
        sum(b.rows_accepted for b in batches),
        "directory",
        tuple(b.pk for b in batches),
    )


def _fetch_database(*, source, cfg, date_from, date_to, actor) -> FetchResult:
    return FetchResult(None, 0, "database")


CONNECTORS = {"database": _fetch_database, "http": _fetch_http, "directory": _fetch_directory}


def fetch_for_window(*, source: DataSource, date_from: date, date_to: date, actor) -> FetchResult:
    cfg = source.connector or {}
    kind = cfg.get("type", "database")
    if kind not in CONNECTORS:
        raise ApplicationError(
            f"Source {source.name}: unknown connector type {kind!r}.", code="invalid_connector"
        )
    return CONNECTORS[kind](source=source, cfg=cfg, date_from=date_from, date_to=date_to, actor=actor)
