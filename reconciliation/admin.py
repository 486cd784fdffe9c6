from reconciliation.ingestion import admin as ingestion_admin  # noqa: F401  (sources, batches, rejections)
