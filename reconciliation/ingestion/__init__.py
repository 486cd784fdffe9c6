"""Ingestion: files and pushed records into the partitioned record table, every row accounted for.

Pipeline (docs/ingestion.md): parse (streamed) → COPY into a session temp staging table →
set-based validation in SQL → partitions for the batch's dates (own short transactions) → ONE
transaction: duplicates against existing records, supersede amended versions, INSERT … SELECT the
accepted rows, INSERT … SELECT the rejections, close the batch with its counts and totals.
"""
