"""pg_trgm and a trigram index on record references (issue 6: fuzzy references).

- The fuzzy pass compares references by trigram similarity (``similarity(a, b) >= threshold``,
  NUMERIC-free: similarity is a real in [0, 1], a score, never money). Inside a run the pass joins
  the small unmatched pools, which it indexes itself (reconciliation/matching/fuzzy.py); this index
  serves the analysts' side: "records whose reference looks like X" when matching by hand and
  reviewing suggestions, scoped by tenant and window, over the whole partitioned table.
- GIN rather than GiST: reads (``%`` and ``similarity`` lookups) dominate, GIN's lookups are
  faster, and its slower build only matters on a big existing table (below).
- Declared on the partitioned parent, so every partition (existing and future) gets it. On a
  parent whose partitions are already large, build it as docs/records.md says instead (``ON ONLY``
  parent, ``CREATE INDEX CONCURRENTLY`` per partition, ``ATTACH``), outside this migration.
- ``pg_trgm`` is a trusted extension (PostgreSQL 13+): the database owner may create it.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEX = """
CREATE INDEX record_reference_trgm_idx ON reconciliation_record USING gin (reference gin_trgm_ops)
    WHERE status = 'active' AND reference <> '';
"""
INDEX_REVERSE = "DROP INDEX IF EXISTS record_reference_trgm_idx;"

# pg_trgm's similarity (shared trigrams / trigrams of either string) as an exact NUMERIC fraction:
# similarity() returns a float4, and a rule's threshold of 0.5 must mean 0.5. Same trigram sets
# (show_trgm), so the two agree to float4 precision; the fuzzy pass prefilters with the cheap
# similarity() and confirms with this one.
SIMILARITY = """
CREATE FUNCTION jf_trgm_similarity(a text, b text) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN total = 0 THEN 0::numeric ELSE shared::numeric / total END
    FROM (
        SELECT shared, cardinality(ta) + cardinality(tb) - shared AS total
        FROM (
            SELECT ta, tb, (SELECT count(*) FROM unnest(ta) t WHERE t = ANY (tb))::integer AS shared
            FROM (SELECT show_trgm(a) AS ta, show_trgm(b) AS tb) sets
        ) counted
    ) fraction
$$;
"""
SIMILARITY_REVERSE = "DROP FUNCTION IF EXISTS jf_trgm_similarity(text, text);"


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0005_statements")]

    operations = [
        TrigramExtension(),
        migrations.RunSQL(INDEX, INDEX_REVERSE),
        migrations.RunSQL(SIMILARITY, SIMILARITY_REVERSE),
    ]
