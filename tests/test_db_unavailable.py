"""An outage of the database or Redis becomes a 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import MutableMapping
from typing import Any

import redis
from django.test import RequestFactory

from librarian.db_unavailable import DatabaseUnavailableMiddleware, UnavailableASGIMiddleware


@functools.cache
def real_outage() -> Exception:
    # Nothing listens on port 1: a real refused connection, not a stand-in.
    try:
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError as exc:
        return exc
    raise AssertionError("something answered on port 1")


def test_it_answers_json_503_for_the_api_and_text_for_pages():
    middleware = DatabaseUnavailableMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    factory = RequestFactory()
    api = middleware.process_exception(factory.get("/api/v1/library"), real_outage())
    assert api is not None and api.status_code == 503
    assert api["Retry-After"] == "5"
    assert json.loads(api.content) == {
        "error": "the queue is unavailable; try again shortly",
        "field": "",
    }
    page = middleware.process_exception(factory.get("/"), real_outage())
    assert page is not None and page.status_code == 503
    assert page["Content-Type"].startswith("text/plain")
    assert middleware.process_exception(factory.get("/"), ValueError("a bug")) is None


def run_asgi(inner: Any, scope_type: str = "http") -> list[MutableMapping[str, Any]]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(UnavailableASGIMiddleware(inner)({"type": scope_type}, receive, send))
    return sent


def test_it_answers_503_when_an_outage_happens_before_the_response():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise real_outage()

    sent = run_asgi(app)
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"5") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["error"].startswith("the queue is unavailable")


def test_it_passes_through_answers_and_other_protocols():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    assert [m.get("status") for m in run_asgi(app)] == [200, None]
    calls: list[str] = []

    async def socket_app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    run_asgi(socket_app, "websocket")
    assert calls == ["websocket"]
