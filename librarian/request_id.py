"""A request id on every request, its response and every log line written while serving it.

The id comes from the `X-Request-ID` header when a proxy (or a client) sent a
sane one, so one id follows a request through the proxy's log and ours;
otherwise a new one is made. It lives in a context variable, which Django
copies into the thread that runs a sync view, and `RequestIdFilter` adds it to
each log record for `librarian.logging.JsonFormatter` to print.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

HEADER = "X-Request-ID"
# Printable, short, no spaces: anything else is replaced rather than logged.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_for(request: HttpRequest) -> str:
    given = request.headers.get(HEADER, "").strip()
    if _ACCEPTED.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Sets the id for the request (`request.request_id`) and echoes it in the response."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        rid = request_id_for(request)
        request.request_id = rid  # type: ignore[attr-defined]
        token = current_request_id.set(rid)
        try:
            response: HttpResponseBase = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[HEADER] = rid
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        rid = request_id_for(request)
        request.request_id = rid  # type: ignore[attr-defined]
        token = current_request_id.set(rid)
        try:
            get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
            response = await get_response(request)
        finally:
            current_request_id.reset(token)
        response[HEADER] = rid
        return response


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records logged while a request is served (never drops one).

    Django logs a 4xx/5xx response ("Not Found: …") after the middleware has
    returned, so for those the id comes from the request the record carries.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            rid = current_request_id.get()
            if rid is None:
                rid = getattr(getattr(record, "request", None), "request_id", None)
            if rid is not None:
                record.request_id = rid
        return True
