"""Artifacts are immutable: a trigger rejects every UPDATE and DELETE, for every role (an auditor
pack that could be rewritten in place would prove nothing). TRUNCATE is not a row operation; the
runtime role has no TRUNCATE privilege (docs/audit.md)."""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION jf_report_artifact_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'report artifacts are immutable: % of artifact % rejected', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER jf_report_artifact_immutable BEFORE UPDATE OR DELETE ON reporting_reportartifact
    FOR EACH ROW EXECUTE FUNCTION jf_report_artifact_immutable();
"""
REVERSE = """
DROP TRIGGER IF EXISTS jf_report_artifact_immutable ON reporting_reportartifact;
DROP FUNCTION IF EXISTS jf_report_artifact_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("reporting", "0001_initial")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
