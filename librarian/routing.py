"""Protocol routing: HTTP streams and WebSockets go to Channels consumers."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path, re_path


def build_application(django_asgi: Any) -> Any:
    from channels.auth import AuthMiddlewareStack
    from channels.security.websocket import AllowedHostsOriginValidator

    from ingestion import consumers
    from librarian.db_unavailable import UnavailableASGIMiddleware
    from librarian.security import CorsASGIMiddleware

    def stream_auth(consumer: Any) -> Any:
        # Only the streams: Django authenticates its own views (DRF, sessions), and
        # an eager lookup here would cost every request a query and turn a database
        # outage into daphne's bare 500.
        return consumers.TokenAuthMiddleware(AuthMiddlewareStack(consumer))

    http_routes = [
        path("api/v1/stream/<str:job_id>", stream_auth(consumers.JobStreamConsumer.as_asgi())),
        path("api/v1/stream", stream_auth(consumers.UserStreamConsumer.as_asgi())),
        re_path(r"", django_asgi),
    ]
    ws_routes = [
        path("ws/v1/stream/<str:job_id>", consumers.JobSocketConsumer.as_asgi()),
        path("ws/v1/jobs", consumers.UserSocketConsumer.as_asgi()),
    ]
    sockets = consumers.TokenAuthMiddleware(AuthMiddlewareStack(URLRouter(ws_routes)))
    checked = AllowedHostsOriginValidator(sockets)

    async def origin_checked(scope: Any, receive: Any, send: Any) -> Any:
        # Browsers always send Origin, so a foreign page is refused; a script with
        # a token sends none and cannot be a cross-site hijack.
        headers = dict(scope.get("headers") or [])
        app = checked if b"origin" in headers else sockets
        return await app(scope, receive, send)

    return ProtocolTypeRouter(
        {
            "http": CorsASGIMiddleware(UnavailableASGIMiddleware(URLRouter(http_routes))),
            "websocket": origin_checked,
        }
    )
