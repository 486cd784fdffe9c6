"""Ingestion: files and pushed records into the partitioned record table, every row accounted for.

Pipeline (docs/ingestion.md): parse (streamed) → validate each row (validation.py) → ONE
transaction under the source's lock: COPY the accepted rows straight into the record table, then
the rejections, close the batch with its counts and totals (the direct path). When the database
refuses that — a natural key repeated or already loaded, a month without its partition — or a
file-level control fails, the staged path decides set-based instead: COPY into a temp table,
duplicates and amendments in SQL, partitions in their own short transactions, then ONE transaction
of INSERT … SELECT.
"""
