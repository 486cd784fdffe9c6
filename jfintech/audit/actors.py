from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user, an API key, or a system task (beat, a worker)."""

    kind: str  # "user" | "api_key" | "system"
    id: str
    display: str

    @classmethod
    def for_user(cls, user) -> "Actor":
        return cls("user", str(user.pk), user.get_username())

    @classmethod
    def for_api_key(cls, key) -> "Actor":
        return cls("api_key", str(key.pk), f"api-key:{key.prefix} ({key.name})"[:200])

    @classmethod
    def for_system(cls, name: str) -> "Actor":
        return cls("system", name, name)

    @classmethod
    def for_cli(cls, command: str) -> "Actor":
        """A management command: the platform acting, naming the command and the OS user who ran it
        (``cli:apikey (os user alice)``), so the audit trail says who typed it."""
        import getpass

        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
            os_user = "unknown"
        name = f"cli:{command} (os user {os_user})"
        return cls("system", name[:64], name[:200])


SYSTEM = Actor.for_system("system")
