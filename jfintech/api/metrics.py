from prometheus_client import Counter

IDEMPOTENCY_OUTCOMES = Counter(
    "api_idempotency_requests_total",
    "POSTs carrying an Idempotency-Key, by outcome: executed, replayed, body_mismatch, wait_timeout.",
    ["outcome"],
)
