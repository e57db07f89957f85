"""Protocol routing: HTTP streams and WebSockets go to Channels consumers."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path, re_path


def build_application(django_asgi: Any) -> Any:
    from channels.auth import AuthMiddlewareStack
    from channels.security.websocket import AllowedHostsOriginValidator

    from ingestion import consumers

    http_routes = [
        path("api/v1/stream/<str:job_id>", consumers.JobStreamConsumer.as_asgi()),
        path("api/v1/stream", consumers.UserStreamConsumer.as_asgi()),
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
            "http": consumers.TokenAuthMiddleware(AuthMiddlewareStack(URLRouter(http_routes))),
            "websocket": origin_checked,
        }
    )
