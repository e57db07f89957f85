"""GET /health reports each dependency and answers 503 when one is down."""

from __future__ import annotations

import pytest
from django.test import Client

from librarian import health

pytestmark = pytest.mark.django_db


def test_it_is_healthy_without_authentication():
    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["version"] == "1.0.0"
    assert {body[k]["status"] for k in ("database", "queue", "storage")} == {"up"}


def test_it_answers_503_naming_the_dependency_that_is_down(settings):
    # Port 1 has no Redis: the broker check meets a real refused connection.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["queue"]["status"] == "down"
    assert body["database"]["status"] == "up"
    assert set(health.CHECKS) == {"database", "queue", "storage"}
