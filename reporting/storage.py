"""Large artifacts as PostgreSQL large objects: written and read 1 MB at a time, so an export of a
million rows is never whole in memory, and every pod (web or worker) reads what another wrote."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from django.db import connection

from jfintech.db.roles import runtime_role

CHUNK = 1 << 20


def lo_write(fileobj) -> tuple[int, str, int]:
    """Copy ``fileobj`` (read from its current position) into a new large object, inside the
    caller's transaction (rolled back with it). Returns (oid, sha256, size)."""
    digest, size = hashlib.sha256(), 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT lo_create(0)")
        oid = cursor.fetchone()[0]
        # Owned by the shared runtime role, so the web pod reads what a worker's login role wrote
        # (a large object belongs to the role that created it). Skipped when not a member (the
        # owner in tests and migrations).
        role = runtime_role()
        cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER') AND current_user <> %s", [role, role])
        if cursor.fetchone()[0] and not _is_superuser(cursor):
            cursor.execute(f"ALTER LARGE OBJECT {int(oid)} OWNER TO {role}")
        while chunk := fileobj.read(CHUNK):
            cursor.execute("SELECT lo_put(%s, %s, %s)", [oid, size, chunk])
            digest.update(chunk)
            size += len(chunk)
    return oid, digest.hexdigest(), size


def lo_chunks(oid: int, size: int) -> Iterator[bytes]:
    for offset in range(0, size, CHUNK):
        with connection.cursor() as cursor:
            cursor.execute("SELECT lo_get(%s, %s, %s)", [oid, offset, CHUNK])
            yield bytes(cursor.fetchone()[0])


def artifact_chunks(artifact) -> Iterator[bytes]:
    """The artifact's bytes, in chunks, wherever they are kept."""
    if artifact.large_object is not None:
        yield from lo_chunks(artifact.large_object, artifact.size)
    else:
        yield bytes(artifact.content)


def _is_superuser(cursor) -> bool:
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    return bool(cursor.fetchone()[0])
