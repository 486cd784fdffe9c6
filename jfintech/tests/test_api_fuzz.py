"""schemathesis against /api/schema/: every operation, with an API key of each role, all checks.

Zero server errors, every response conforms to its documented schema (status code, content type,
headers, body), invalid input is refused and valid input accepted. In process (WSGI) on the test
database, with some data so ids sometimes exist; bounded by ``max_examples`` and derandomized, so
a failure reproduces and the whole run takes a couple of minutes on this machine.
"""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from exceptions.tests.test_apis import make_cases
from jfintech.audit import Actor
from jfintech.tenancy import services as tenancy_services
from jfintech.tenancy.models import Role
from jfintech.tests.factories import TenantFactory, member
from reconciliation.matching.tests.factories import two_way

ROLES = list(Role)
MAX_EXAMPLES = 12


@pytest.fixture
def role_keys(db):
    tenant = TenantFactory(slug="fuzz")
    admin = member(tenant, Role.ADMIN, username="fuzz-admin")
    member(tenant, Role.ANALYST, username="fuzz-analyst")
    make_cases(tenant, {"amount": "10.00"}, {"amount": "20.00", "break_type": "missing_right"})
    two_way([{"name": "exact_ref", "type": "exact", "keys": ["reference"]}], tenant=tenant)
    return {
        role: tenancy_services.api_key_create(
            tenant=tenant, actor=Actor.for_user(admin), name=f"fuzz-{role}", role=role
        ).plaintext
        for role in ROLES
    }


# The boundary refuses NUL bytes everywhere (test_input_boundary.py proves it); JSON Schema has no
# way to say so, so schemathesis is told not to generate them.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict({"generation": {"allow-x00": False}})
# Shapes the schema promises are accepted; a domain rule (a cross-field or state rule with its own
# code in docs/api.md, such as invalid_resolution_reason) may still refuse a well-formed request,
# and so may the input boundary (parse_error) for an integer beyond 64 bits inside a free-form
# object, which JSON Schema cannot bound.
SHAPE_CODES = {"invalid"}


def schema_valid_is_well_formed(ctx, response, case):
    """positive_data_acceptance, but a 400 only fails when it says the request was malformed."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    code = response.json()["error"]["code"]
    assert code not in SHAPE_CODES, f"schema-valid request refused as malformed: {response.text}"
    return None


def _schema():
    """The schema /api/schema/ serves (same generator), loaded for schemathesis at collection time."""
    spec = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(spec)), config=CONFIG)
    loaded.app = get_wsgi_application()
    return loaded


OPERATIONS = [result.ok() for result in _schema().get_all_operations()]


@pytest.fixture
def in_process():
    # As Django's test client does: a request must not close the test's (transactional) connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_every_operation_conforms_for_every_role(operation, role_keys, in_process):
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=cases, role=st.sampled_from(ROLES))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case, role):
        case.call_and_validate(
            headers={"Authorization": f"Api-Key {role_keys[role]}"},
            excluded_checks=[positive_data_acceptance],
            additional_checks=[schema_valid_is_well_formed],
        )

    fuzz()
