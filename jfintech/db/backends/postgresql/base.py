"""The project's PostgreSQL backend: django-prometheus' wrapper plus a *pre-commit* hook.

Django runs hooks after a commit (``on_commit``) but has none just before it. The audit trail
needs one: each tenant's hash chain is appended under a transaction-level advisory lock, and
taking that lock when ``audit.record()`` is called would serialise the rest of the service's
transaction (a long load that audits early would block every other writer of that tenant).
Registered hooks run right before COMMIT, in the transaction, so the lock is held only for the
few statements that link the chain. A hook that raises rolls the whole transaction back.
"""

from collections.abc import Callable

from django_prometheus.db.backends.postgresql.base import DatabaseWrapper as PrometheusDatabaseWrapper


class DatabaseWrapper(PrometheusDatabaseWrapper):
    supports_pre_commit_hooks = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pre_commit_hooks: dict[str, Callable[[], None]] = {}

    def on_pre_commit(self, key: str, hook: Callable[[], None]) -> None:
        """Run ``hook()`` once, inside the transaction, right before the outermost COMMIT.

        Hooks are keyed so a caller can register "flush my pending work" many times. They must
        not use ``transaction.atomic`` (the atomic block is already closed); plain cursors only.
        """
        self.pre_commit_hooks.setdefault(key, hook)

    def commit(self):
        hooks, self.pre_commit_hooks = self.pre_commit_hooks, {}
        if hooks and self.connection is not None:
            try:
                for hook in hooks.values():
                    hook()
            except BaseException:
                # Atomic.__exit__ only rolls back on DatabaseError; never leave a half-open
                # transaction behind whatever the hook raised.
                self._rollback()
                self.run_on_commit = []
                raise
        super().commit()

    def rollback(self):
        self.pre_commit_hooks = {}
        super().rollback()

    def close(self):
        self.pre_commit_hooks = {}
        super().close()
