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
    return ProtocolTypeRouter(
        {
            "http": consumers.TokenAuthMiddleware(AuthMiddlewareStack(URLRouter(http_routes))),
            "websocket": AllowedHostsOriginValidator(
                consumers.TokenAuthMiddleware(AuthMiddlewareStack(URLRouter(ws_routes)))
            ),
        }
    )
