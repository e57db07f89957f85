"""A database (or Redis) outage is a 503 with Retry-After, never a 500.

DRF views answer 503 through `librarian.api_errors`, which uses `UNAVAILABLE`
from here; `DatabaseUnavailableMiddleware` covers every other Django view (the
browser pages, the admin), and `UnavailableASGIMiddleware` the ASGI layers in
front of Django (the streams' token and login-cookie lookups). So a client backs off
and retries instead of reporting a bug. Redis counts too: with `REDIS_URL` it
holds the cache the API throttle reads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class UnavailableASGIMiddleware:
    """Answers 503 when an ASGI app raises UNAVAILABLE before its response has started."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.inner(scope, receive, tracking_send)
        except UNAVAILABLE as exc:
            if started:
                raise
            body = json.dumps({"error": unavailable_message(exc), "field": ""}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_S).encode()),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
