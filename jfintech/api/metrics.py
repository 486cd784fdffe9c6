from prometheus_client import Counter

IDEMPOTENCY_OUTCOMES = Counter(
    "api_idempotency_requests_total",
    "POSTs carrying an Idempotency-Key, by outcome: executed, replayed, body_mismatch, wait_timeout.",
    ["outcome"],
)

QUEUE_FULL_REFUSALS = Counter(
    "api_queue_full_refusals_total",
    "Requests refused with 503 queue_full because the queue they enqueue on was at its depth limit.",
    ["queue"],
)


def initialise_queue_full_refusals(queues) -> None:
    """Every queue's refusal series at 0 from the start, so JfintechApiQueueFull sees the first
    refusal after a web process starts (increase() needs a sample before it)."""
    for queue in queues:
        QUEUE_FULL_REFUSALS.labels(queue=queue)
