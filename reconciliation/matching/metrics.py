"""Metrics of matching depth (listed in jfintech.observability.catalog). Never labelled by run id."""

from prometheus_client import Counter

SIMULATIONS = Counter(
    "recon_simulations_total",
    "Dry runs and impact simulations computed, by kind (dry_run, impact) and outcome (completed, failed).",
    ["kind", "outcome"],
)
MATCH_DECISIONS = Counter(
    "recon_match_decisions_total",
    "Analysts' decisions on matches: suggestion_accepted, suggestion_rejected, manual_match, unmatch.",
    ["decision"],
)
