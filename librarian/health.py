"""GET /health: the state of each dependency; 503 when one the app needs is down."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _queue() -> str:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        client.ping()
        return "redis"
    from django_q.models import OrmQ

    OrmQ.objects.exists()
    return "orm"


def _storage() -> str:
    default_storage.exists("library")
    return settings.LIBRARIAN_STORAGE


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "queue": _queue,
    "storage": _storage,
}


def health(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {}
    healthy = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            backend = check()
            checks[name] = {"status": "up", "backend": backend}
        except Exception as exc:  # noqa: BLE001
            healthy = False
            checks[name] = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
        checks[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    body = {"status": "healthy" if healthy else "unhealthy", "version": settings.VERSION, **checks}
    return JsonResponse(body, status=200 if healthy else 503)
