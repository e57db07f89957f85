"""Token authentication for the ASGI streams: `Authorization: Token <key>` (DRF's tokens).

The browser's login cookie is handled by Channels' AuthMiddlewareStack; API
clients and command-line tools send the same token they use for the REST API.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_for_token(key: str) -> Any:
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenAuthMiddleware:
    """Sets scope["user"] from `Authorization: Token <key>` when the header is present.

    Without the header the login cookie decides (AuthMiddlewareStack). A bad
    token makes the user anonymous rather than falling back to the cookie, as
    DRF's TokenAuthentication does. Works on either side of AuthMiddlewareStack:
    outside it, the stack's `scope["user"]._wrapped = ...` lands as an unused
    attribute on the resolved user instead of replacing it.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = token_from_headers(scope.get("headers", []))
        if key is not None:
            scope = dict(scope, user=await _user_for_token(key))
        return await self.inner(scope, receive, send)


def token_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            kind, _, key = value.decode("latin1").strip().partition(" ")
            if kind.lower() == "token":
                return key.strip()
    return None
