from reconciliation.ingestion import admin as ingestion_admin  # noqa: F401  (sources, batches, rejections)
from reconciliation.matching import admin as matching_admin  # noqa: F401  (matches, rule approval, simulations)
from reconciliation.runs import admin as runs_admin  # noqa: F401  (definitions, rule versions, runs, breaks)
