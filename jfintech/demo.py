"""The core's demo step: a superuser, and the demo users' passwords kept across restarts.

A newcomer restarting ``make demo`` keeps logging in with the passwords printed the first time:
each is generated once and kept in ``settings.DEMO_CREDENTIALS_FILE`` (mode 0600, in the checkout's
``.local/``), reused while it still logs that user in (someone who changed it in the admin gets a
fresh one printed, never a stale one). ``serve`` prints the block again after READY
(``login_block``). Delete the file for new passwords.
"""

import json
import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model

DEMO_SUPERUSER = "admin"


def _stored() -> dict:
    try:
        return json.loads(settings.DEMO_CREDENTIALS_FILE.read_text())
    except FileNotFoundError:
        return {}


def _store(credentials: dict) -> None:
    path = settings.DEMO_CREDENTIALS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(credentials, f, indent=1, sort_keys=True)


def demo_password(user, *, label: str) -> str:
    """The demo ``user``'s password: the kept one if it still logs them in, else a new one (set and
    kept). ``label`` says who they are in the login block (``analyst of tenant demo``)."""
    credentials = _stored()
    kept = credentials.get(user.get_username(), {}).get("password")
    if kept and user.has_usable_password() and user.check_password(kept):
        password = kept
    else:
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save(update_fields=["password"])
    credentials[user.get_username()] = {"password": password, "label": label}
    _store(credentials)
    return password


def login_block() -> str:
    """The demo logins, for the terminal (serve prints it after READY)."""
    lines = [f"  {name} / {c['password']}   ({c['label']})" for name, c in sorted(_stored().items())]
    where = settings.DEMO_CREDENTIALS_FILE
    return "\n".join(
        ["log in with (kept across restarts; delete " + str(where) + " for new passwords):", *lines]
    )


def seed_superuser(out) -> None:
    user, _ = get_user_model().objects.get_or_create(
        username=DEMO_SUPERUSER, defaults={"email": "admin@demo.invalid"}
    )
    user.is_staff = user.is_superuser = True
    user.save()
    password = demo_password(user, label="superuser: the platform, every tenant")
    out.write(f"demo superuser: {DEMO_SUPERUSER} / {password}")
