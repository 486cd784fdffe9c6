"""The core's demo step: a superuser with a fresh password, printed for the person at the terminal."""

import secrets

from django.contrib.auth import get_user_model

DEMO_SUPERUSER = "admin"


def seed_superuser(out) -> None:
    password = secrets.token_urlsafe(12)
    user, _ = get_user_model().objects.get_or_create(
        username=DEMO_SUPERUSER, defaults={"email": "admin@demo.invalid"}
    )
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    out.write(f"demo superuser: {DEMO_SUPERUSER} / {password}")
