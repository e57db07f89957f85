"""Response security headers: a Content-Security-Policy per path, and CORS for the API.

Django's SecurityMiddleware already sends nosniff, HSTS (on https only), the
referrer and opener policies; XFrameOptionsMiddleware denies framing. This
module adds what Django 5.2 lacks:

- `SecurityHeadersMiddleware`: a strict CSP on every response. Three pages ship
  third-party markup that needs more, and get exactly that, by path prefix:
  Swagger UI renders an inline bootstrap script (it embeds the CSRF token, so no
  hash can cover it) and inline styles; Redoc injects styles at run time and
  starts its search worker from a blob: URL. The admin works under the strict
  policy (Django ≥ 4 ships no inline scripts), so it gets no exception.
- CORS for `/api/` paths, from the `LIBRARIAN_CORS_ORIGINS` allow-list. An allowed
  origin is echoed back (never `*` unless the list itself is `*`); an unknown
  origin gets no CORS header at all, so the browser blocks it. Credentials are
  never allowed: cross-origin clients authenticate with `Authorization: Token`,
  so a page on another origin can never ride a user's login cookie.
  `CorsMiddleware` serves Django's views; `CorsASGIMiddleware` does the same for
  the Channels stream consumers, which Django middleware never sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

Directives = dict[str, str]

BASE_POLICY: Directives = {
    "default-src": "'self'",
    "img-src": "'self' data:",
    "style-src": "'self'",
    "script-src": "'self'",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}
# Longest prefix first: the first match wins.
PATH_POLICIES: list[tuple[str, Directives]] = [
    (
        "/api/docs/",
        {"script-src": "'self' 'unsafe-inline'", "style-src": "'self' 'unsafe-inline'"},
    ),
    ("/api/redoc/", {"style-src": "'self' 'unsafe-inline'", "worker-src": "'self' blob:"}),
]

CORS_PREFIX = "/api/"
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
CORS_EXPOSE = "Retry-After"
CORS_MAX_AGE = "600"


def content_security_policy(path: str) -> str:
    directives = dict(BASE_POLICY)
    for prefix, overrides in PATH_POLICIES:
        if path.startswith(prefix):
            directives.update(overrides)
            break
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class SecurityHeadersMiddleware:
    """Adds the path's Content-Security-Policy unless the view chose its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request.path)
        return response


# ---------------------------------------------------------------- CORS


def allowed_origin(origin: str | None) -> str | None:
    """The value for Access-Control-Allow-Origin, or None when `origin` is not allowed."""
    if not origin:
        return None
    allowed = settings.LIBRARIAN_CORS_ORIGINS
    if origin in allowed:
        return origin
    if "*" in allowed:
        return "*"
    return None


def cors_headers(path: str, origin: str | None, *, preflight: bool) -> list[tuple[str, str]]:
    """The CORS headers a response to `origin` for `path` carries (none if not allowed)."""
    if not path.startswith(CORS_PREFIX):
        return []
    value = allowed_origin(origin)
    if value is None:
        return []
    headers = [("Access-Control-Allow-Origin", value)]
    if preflight:
        headers += [
            ("Access-Control-Allow-Methods", CORS_METHODS),
            ("Access-Control-Allow-Headers", CORS_HEADERS),
            ("Access-Control-Max-Age", CORS_MAX_AGE),
        ]
    else:
        headers.append(("Access-Control-Expose-Headers", CORS_EXPOSE))
    return headers


def is_preflight(method: str, origin: str | None, requested_method: str | None) -> bool:
    return method == "OPTIONS" and bool(origin) and bool(requested_method)


class CorsMiddleware:
    """CORS for Django's `/api/` views. Sits before CSRF and authentication, because a
    preflight carries neither cookies nor tokens and must be answered as is."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        origin = request.headers.get("Origin")
        preflight = is_preflight(
            request.method or "", origin, request.headers.get("Access-Control-Request-Method")
        )
        headers = cors_headers(request.path, origin, preflight=preflight)
        if preflight and headers:
            response: HttpResponseBase = HttpResponse(status=204)
        else:
            response = self.get_response(request)
        for name, value in headers:
            response[name] = value
        if request.path.startswith(CORS_PREFIX) and settings.LIBRARIAN_CORS_ORIGINS:
            # The answer depends on Origin: shared caches must not serve one origin's to another.
            _add_vary(response, "Origin")
        return response


def _add_vary(response: HttpResponseBase, header: str) -> None:
    existing = [v.strip() for v in response.get("Vary", "").split(",") if v.strip()]
    if header.lower() not in (v.lower() for v in existing):
        response["Vary"] = ", ".join([*existing, header])


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin1")
    return None


def _encoded(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers]


class CorsASGIMiddleware:
    """The same CORS rules for ASGI apps Django middleware never sees (the SSE consumers).

    Idempotent: a response that already carries Access-Control-Allow-Origin (one
    of Django's, through CorsMiddleware) is passed on untouched.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(CORS_PREFIX):
            await self.inner(scope, receive, send)
            return
        path = str(scope["path"])
        origin = _header(scope, b"origin")
        preflight = is_preflight(
            str(scope.get("method", "")), origin, _header(scope, b"access-control-request-method")
        )
        headers = _encoded(cors_headers(path, origin, preflight=preflight))
        if preflight and headers:
            vary = [(b"vary", b"Origin"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 204, "headers": headers + vary})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and headers:
                present = {bytes(k).lower() for k, _ in message.get("headers", [])}
                if b"access-control-allow-origin" not in present:
                    message = dict(message)
                    message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.inner(scope, receive, send_with_cors)
