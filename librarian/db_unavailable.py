"""A database (or Redis) outage is a 503 with Retry-After, never a 500.

DRF views answer 503 through `librarian.api_errors`, which uses `UNAVAILABLE`
from here; this middleware covers every other view (the browser pages, the
admin), so a client backs off and retries instead of reporting a bug. Redis
counts too: with `REDIS_URL` it holds the cache the API throttle reads.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
RETRY_AFTER_S = 5


def unavailable_message(exc: Exception) -> str:
    service = "queue" if isinstance(exc, redis.exceptions.RedisError) else "database"
    return f"the {service} is unavailable; try again shortly"


def unavailable_response(request: HttpRequest, exc: Exception) -> HttpResponse:
    response: HttpResponse
    message = unavailable_message(exc)
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": message, "field": ""}, status=503)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, UNAVAILABLE):
            return unavailable_response(request, exception)
        return None
