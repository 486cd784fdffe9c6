"""A package is write-once: PostgreSQL refuses to change its content or delete it.

Only the submission stamp may be set, once (submitted_at from NULL). A bug, a shell session or an
admin action that tries more gets a loud error instead of silently altering what was filed.
"""

from django.db import migrations

SQL = """
CREATE FUNCTION filings_package_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'filings_package % is write-once: it cannot be deleted', OLD.id;
    END IF;
    IF NEW.xml IS DISTINCT FROM OLD.xml OR NEW.sha256 IS DISTINCT FROM OLD.sha256
       OR NEW.manifest IS DISTINCT FROM OLD.manifest OR NEW.size_bytes IS DISTINCT FROM OLD.size_bytes
       OR NEW.created_at IS DISTINCT FROM OLD.created_at OR NEW.created_by IS DISTINCT FROM OLD.created_by
       OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.kind IS DISTINCT FROM OLD.kind
       OR (OLD.submitted_at IS NOT NULL AND (NEW.submitted_at IS DISTINCT FROM OLD.submitted_at
                                             OR NEW.submitted_by IS DISTINCT FROM OLD.submitted_by)) THEN
        RAISE EXCEPTION 'filings_package % is write-once: only the submission stamp may be set, once', OLD.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER filings_package_write_once BEFORE UPDATE OR DELETE ON filings_package
FOR EACH ROW EXECUTE FUNCTION filings_package_write_once();
"""

REVERSE = """
DROP TRIGGER filings_package_write_once ON filings_package;
DROP FUNCTION filings_package_write_once();
"""


class Migration(migrations.Migration):
    dependencies = [("filings", "0001_initial")]

    operations = [migrations.RunSQL(SQL, REVERSE)]
