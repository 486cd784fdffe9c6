"""The application's runtime database role: DML everywhere, never TRUNCATE, never rewrite the audit trail.

Migrations (and Django's test teardown, which truncates) run as the tables' owner. The web and
workers run as a login role that is a member of ``settings.DB_RUNTIME_ROLE`` (docs/audit.md), so
even a compromised or buggy application cannot TRUNCATE a table or UPDATE/DELETE audit events
(a trigger also rejects the latter for everyone, the owner included, unless it is disabled).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import connection

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Tables whose rows are never deleted by the application.
APPEND_ONLY_TABLES = ("jfintech_auditevent", "jfintech_auditchainhead")


def runtime_role() -> str:
    name = settings.DB_RUNTIME_ROLE
    if not _ROLE_NAME.match(name):
        raise ValueError(f"DB_RUNTIME_ROLE {name!r} is not a plain lower-case identifier")
    return name


def create_role_sql(role: str) -> str:
    # Roles are cluster-wide and several databases (tests, other checkouts) may create it at
    # once: tolerate the race. Without CREATEROLE, fail with what to do.
    return f"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            BEGIN
                CREATE ROLE {role} NOLOGIN;
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL;
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'cannot create role {role}: run CREATE ROLE {role} NOLOGIN as a '
                        'superuser (or a role with CREATEROLE), then migrate again';
            END;
        END IF;
    END $$;
    """


def grant_runtime_privileges(using_connection=None) -> None:
    """Grant the runtime role what it needs on every table of the schema (idempotent)."""
    conn = using_connection or connection
    role = runtime_role()
    with conn.cursor() as cursor:
        cursor.execute(create_role_sql(role))
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
        existing = set(conn.introspection.table_names(cursor))
        statements = [
            f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}',
            f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}',
            f'REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA "{schema}" FROM {role}',
            # Tables that later migrations create get the same grants (and post_migrate re-grants).
            f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" '
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
            f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" '
            f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
        ]
        statements += [f"REVOKE DELETE ON {t} FROM {role}" for t in APPEND_ONLY_TABLES if t in existing]
        for statement in statements:
            cursor.execute(statement)


def post_migrate_grant(sender, using="default", **kwargs) -> None:
    if sender.name != "jfintech":
        return
    from django.db import connections

    grant_runtime_privileges(connections[using])
