"""Generated input against every operation of the OpenAPI schema: no request gets a 5xx.

Schemathesis reads `/api/schema/` from the real application (in process, through
Django's WSGI handler; the schema view needs no database) and sends each
operation a bounded number of valid and invalid requests as a signed-in user, on
the test database.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def token(alice, transactional_db, settings) -> str:
    # Django's WSGI handler closes the connection after each request, which a
    # test wrapped in one transaction would not survive.
    settings.LIBRARIAN_MAX_BACKLOG = 100000
    return Token.objects.create(user=alice).key


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_it_never_answers_a_server_error(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=[not_a_server_error])
