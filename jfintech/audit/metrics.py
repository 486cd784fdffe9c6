from prometheus_client import Gauge

# Per tenant (bounded by the number of tenants; never by run, pod or pid). "mostrecent": the
# value of whichever worker process verified last, not a sum over processes.
AUDIT_CHAIN_VERIFIED = Gauge(
    "audit_chain_verified",
    "1 if the tenant's audit chain (hashes, signatures, signed head) verified at the last run, else 0.",
    ["tenant"],
    multiprocess_mode="mostrecent",
)
AUDIT_CHAIN_EVENTS = Gauge(
    "audit_chain_events",
    "Events in the tenant's audit chain at the last verification (a drop means events were removed).",
    ["tenant"],
    multiprocess_mode="mostrecent",
)
AUDIT_VERIFICATION_TIMESTAMP = Gauge(
    "audit_chain_last_verification_timestamp_seconds",
    "When the audit chains were last verified (alert when older than a day and a bit).",
    multiprocess_mode="mostrecent",
)
