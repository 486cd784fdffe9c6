"""A small process supervisor for ``manage.py serve`` (the demo): a child that dies is restarted, with
backoff, and said loudly; everything stops only on Ctrl-C/SIGTERM or a crash loop.

A crash loop is one child exiting more than ``max_restarts`` times within ``window_s`` seconds: then
restarting is not helping (a bad setting, a port taken, the database gone) and the supervisor stops
every child and raises ``CrashLoop``. The backoff before the n-th restart within the window is
``min(2 ** (n - 1), max_backoff_s)`` seconds, so a child that dies once is back within a second.

In production Kubernetes is the supervisor (each process is a pod with its own restart policy);
this is for the one-machine demo, where one dead worker must not take web and the others with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field

from jfintech.observability.logging import get_logger

log = get_logger(__name__)


class CrashLoop(Exception):
    """A child exited more often than the restart window allows: serve stops everything."""


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict
    proc: subprocess.Popen | None = None
    exits: deque = field(default_factory=deque)  # monotonic times of recent exits
    restart_at: float | None = None


class Supervisor:
    def __init__(self, *, cwd, write=print, max_restarts: int = 5, window_s: float = 60.0,
                 max_backoff_s: float = 30.0):  # fmt: skip
        self.cwd = cwd
        self.write = write
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.max_backoff_s = max_backoff_s
        self.children: dict[str, Child] = {}

    def add(self, name: str, argv: list[str], env: dict) -> None:
        self.children[name] = Child(name, argv, env)

    def start(self, child: Child) -> None:
        # Own session: Ctrl-C reaches the supervisor only, which stops the children in order.
        child.proc = subprocess.Popen(child.argv, cwd=self.cwd, env=child.env, start_new_session=True)
        child.restart_at = None
        self.write(f"started {child.name} (pid {child.proc.pid})")

    def start_all(self) -> None:
        for child in self.children.values():
            self.start(child)

    def pids(self) -> dict[str, int]:
        return {name: c.proc.pid for name, c in self.children.items() if c.proc is not None}

    def poll(self, now: float | None = None) -> None:
        """One round: schedule a restart for each child that exited, start those that are due.
        Raises CrashLoop (after stopping everything) when a child exits too often."""
        now = time.monotonic() if now is None else now
        for child in self.children.values():
            if child.restart_at is None and child.proc.poll() is not None:
                child.exits.append(now)
                while child.exits and child.exits[0] < now - self.window_s:
                    child.exits.popleft()
                n = len(child.exits)
                code = child.proc.returncode
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"
                if n > self.max_restarts:
                    message = (
                        f"{child.name} exited ({how}) {n} times within {self.window_s:g}s: a crash loop,"
                        " stopping everything"
                    )
                    self.write(f"!!! {message}")
                    log.error("serve_crash_loop", child=child.name, exits=n, returncode=code)
                    self.stop()
                    raise CrashLoop(message)
                delay = min(2 ** (n - 1), self.max_backoff_s)
                child.restart_at = now + delay
                self.write(
                    f"!!! {child.name} (pid {child.proc.pid}) exited ({how}); restart {n} in {delay:g}s"
                )
                log.error("serve_child_exited", child=child.name, returncode=code, restart=n, backoff_s=delay)
            if child.restart_at is not None and now >= child.restart_at:
                self.start(child)

    def stop(self, timeout: float = 20.0) -> None:
        running = [c.proc for c in self.children.values() if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for child in self.children.values():
            child.restart_at = None
