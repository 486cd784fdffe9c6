"""Tenant isolation registry: how to make "tenant B's object" for every API endpoint that names one.

``jfintech/tests/test_tenant_isolation.py`` enumerates every URL pattern under ``/api/v1/``. For
each one with a path parameter it needs an object of another tenant to aim at, so every such
endpoint must be registered here, or the test FAILS naming it. Register in your app's
``<app>/tests/isolation.py`` (imported automatically)::

    from jfintech.testing.isolation import tenant_object

    @tenant_object("case-detail", "case-assign", bodies={"case-assign": {"assignee": None}})
    def a_case(tenant) -> dict:
        case = ...create a case (and what it needs) in ``tenant``...
        return {"case_id": case.pk}          # the URL kwargs naming it

* the names are URL names as in your ``urls.py`` (without the ``v1:`` namespace);
* the function creates the object in the given tenant and returns the URL's kwargs;
* ``bodies`` gives, per URL name, a body that passes the endpoint's parsing and input validation,
  so the test reaches the object lookup (POST/PUT/PATCH bodies default to ``{}``, sent as JSON).
  A callable is called for each request; a body holding a file is sent as multipart.

The test then checks, for every HTTP method the view implements, that a user of tenant A, a
user of both tenants acting as A (``X-Tenant: a``) and an API key of A all get **404**, and, as a
control, that a user of tenant B can GET the object when the view has GET. Platform-level
endpoints (staff only, no tenant) are declared with ``platform_endpoint`` instead; the test
checks tenant users and keys get 403 there. Work that must be committed before the tests'
transactions (creating partitions) goes in a ``@session_setup`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils.module_loading import autodiscover_modules


@dataclass(frozen=True)
class Registration:
    make: Callable[..., dict]
    bodies: dict[str, dict | Callable[[], dict]] = field(default_factory=dict)


TENANT_OBJECTS: dict[str, Registration] = {}
PLATFORM_ENDPOINTS: set[str] = set()
SESSION_SETUP: list[Callable[[], None]] = []


def tenant_object(*url_names: str, bodies: dict[str, dict | Callable[[], dict]] | None = None):
    def register(make):
        for name in url_names:
            if name in TENANT_OBJECTS or name in PLATFORM_ENDPOINTS:
                raise ValueError(f"URL name {name!r} is registered twice for the isolation test")
            TENANT_OBJECTS[name] = Registration(make, bodies or {})
        return make

    return register


def platform_endpoint(*url_names: str) -> None:
    for name in url_names:
        if name in TENANT_OBJECTS:
            raise ValueError(f"URL name {name!r} is both tenant-scoped and platform-level")
        PLATFORM_ENDPOINTS.add(name)


def session_setup(fn: Callable[[], None]) -> Callable[[], None]:
    """Run ``fn`` once, committed, before the isolation tests' transactions (e.g. create partitions,
    which cannot be created inside a transaction that has written to the tables they reference)."""
    SESSION_SETUP.append(fn)
    return fn


def autodiscover() -> None:
    """Import ``<app>.tests.isolation`` of every installed app that has one."""
    autodiscover_modules("tests.isolation")
