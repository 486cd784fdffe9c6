"""Ingestion metrics (names fixed by issue 8 / CONTRACTS.md). Never labelled by batch, pod or pid."""

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter("ingest_rows_total", "Rows ingested, by record kind and outcome (accepted, rejected).",
               ["kind", "outcome"])  # fmt: skip
REJECTIONS = Counter("ingest_rejections_total", "Rejected rows, by record kind and reason code.",
                     ["kind", "reason"])  # fmt: skip
BATCH_DURATION = Histogram(
    "ingest_batch_duration_seconds",
    "Batch duration from receipt to commit, by format and outcome (loaded, rejected, duplicate, failed).",
    ["format", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
STAGED = Counter(
    "ingest_batches_staged_total",
    "Batches the direct load handed to the staged path (parsed twice), by record kind and why:"
    " duplicate_key, no_partition, many_rejections, file_control, re_reports.",
    ["kind", "why"],
)
BYTES = Counter("ingest_bytes_total", "Bytes of files received for ingestion, by format.", ["format"])
CONNECTOR_REQUESTS = Counter(
    "connector_requests_total",
    "Connector fetch attempts, by connector and outcome (ok, error, timeout, http_error, circuit_open).",
    ["connector", "outcome"],
)
CIRCUIT_OPEN = Gauge(
    "connector_circuit_open",
    "1 while a connector's circuit breaker is open for some source of this kind.",
    ["source_kind"],
    multiprocess_mode="max",
)
