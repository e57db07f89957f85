"""ws /ws/v1/stream/{job_id} and ws /ws/v1/jobs: the WebSocket fallback against real Daphne."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ingestion.events import job_group
from ingestion.models import JobEvent
from tests.ingestion.conftest import RUN, emit, emit_run, make_job, token_header

pytestmark = pytest.mark.django_db(transaction=True)


def ws_connect(server, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """A socket as a browser on our own site opens it (the origin check wants an Origin)."""
    kwargs.setdefault("origin", server.base)
    return connect(url, additional_headers=headers or {}, **kwargs)


def job_ws(server, job_id: Any) -> str:
    return f"{server.ws_base}/ws/v1/stream/{job_id}"


async def receive_all(ws: ClientConnection, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Every message until the server closes the socket."""
    messages: list[dict[str, Any]] = []

    async def read() -> None:
        try:
            async for raw in ws:
                messages.append(json.loads(raw))
        except ConnectionClosed:
            pass

    await asyncio.wait_for(read(), timeout)
    return messages


async def receive(ws: ClientConnection, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), timeout)) for _ in range(count)]


def test_it_sends_the_same_events_as_json_and_closes(stream_server, alice, alice_token):
    job = make_job(alice)

    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with ws_connect(
            stream_server, job_ws(stream_server, job.pk), token_header(alice_token)
        ) as ws:
            await asyncio.to_thread(emit_run, job.pk)
            return await receive_all(ws), ws.close_code

    messages, code = asyncio.run(run())
    assert [m["event"] for m in messages] == [name for name, _ in RUN]
    assert [m["id"] for m in messages] == list(range(1, len(RUN) + 1))
    assert all(set(m) == {"id", "event", "data"} for m in messages)
    stored = list(JobEvent.objects.filter(job=job).order_by("seq"))
    assert [m["data"] for m in messages] == [e.data for e in stored]
    assert code == 1000


def test_it_resumes_from_last_event_id_in_the_query(stream_server, alice, alice_token):
    job = make_job(alice)
    emit_run(job.pk)

    async def run() -> list[dict[str, Any]]:
        url = f"{job_ws(stream_server, job.pk)}?last_event_id=6"
        async with ws_connect(stream_server, url, token_header(alice_token)) as ws:
            return await receive_all(ws)

    assert [m["id"] for m in asyncio.run(run())] == [7, 8, 9]


def test_it_resumes_after_a_last_event_id_message(stream_server, alice, alice_token):
    job = make_job(alice)
    emit_run(job.pk, RUN[:4])

    async def run() -> tuple[list[int], list[int], list[int]]:
        async with ws_connect(
            stream_server, job_ws(stream_server, job.pk), token_header(alice_token)
        ) as ws:
            first = [m["id"] for m in await receive(ws, 4)]
            await ws.send(json.dumps({"last_event_id": 2}))
            again = [m["id"] for m in await receive(ws, 2)]
            await asyncio.to_thread(emit_run, job.pk, RUN[4:])
            rest = [m["id"] for m in await receive_all(ws)]
            return first, again, rest

    first, again, rest = asyncio.run(run())
    assert first == [1, 2, 3, 4]
    assert again == [3, 4]
    assert rest == list(range(5, len(RUN) + 1))


def test_it_authenticates_with_a_token_header_or_the_session_cookie(
    stream_server, alice, alice_token
):
    job = make_job(alice)
    emit_run(job.pk)
    client = Client()
    client.force_login(alice)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    async def run(headers: dict[str, str]) -> list[dict[str, Any]]:
        async with ws_connect(stream_server, job_ws(stream_server, job.pk), headers) as ws:
            return await receive_all(ws)

    assert len(asyncio.run(run(token_header(alice_token)))) == len(RUN)
    assert len(asyncio.run(run({"Cookie": cookie}))) == len(RUN)


def test_it_closes_4401_without_credentials_and_4404_for_other_jobs(
    stream_server, alice, bob, alice_token
):
    bobs = make_job(bob)

    async def close_code(url: str, headers: dict[str, str]) -> int | None:
        async with ws_connect(stream_server, url, headers) as ws:
            await receive_all(ws)
            return ws.close_code

    assert asyncio.run(close_code(job_ws(stream_server, bobs.pk), {})) == 4401
    assert asyncio.run(close_code(job_ws(stream_server, bobs.pk), token_header("nope"))) == 4401
    assert asyncio.run(close_code(f"{stream_server.ws_base}/ws/v1/jobs", {})) == 4401
    for job_id in (bobs.pk, uuid.uuid4(), "not-a-uuid"):
        url = job_ws(stream_server, job_id)
        assert asyncio.run(close_code(url, token_header(alice_token))) == 4404
    mine = make_job(alice)
    bad = f"{job_ws(stream_server, mine.pk)}?last_event_id=-1"
    assert asyncio.run(close_code(bad, token_header(alice_token))) == 4400


def test_it_refuses_a_foreign_origin(stream_server, alice, alice_token):
    job = make_job(alice)
    emit_run(job.pk)

    async def attempt(origin: str) -> list[dict[str, Any]]:
        async with ws_connect(
            stream_server, job_ws(stream_server, job.pk), token_header(alice_token), origin=origin
        ) as ws:
            return await receive_all(ws)

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(attempt("https://evil.example"))
    assert refused.value.response.status_code == 403
    assert len(asyncio.run(attempt(stream_server.base))) == len(RUN)


def test_it_streams_the_users_own_jobs(stream_server, alice, bob, alice_token):
    first, second, bobs = make_job(alice), make_job(alice), make_job(bob)
    url = f"{stream_server.ws_base}/ws/v1/jobs"

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with ws_connect(stream_server, url, token_header(alice_token)) as ws:
            await asyncio.sleep(0.3)  # subscribed; live events only from here
            await asyncio.to_thread(emit, first.pk, "job_started")
            await asyncio.to_thread(emit, bobs.pk, "job_started")
            await asyncio.to_thread(emit, second.pk, "job_started")
            await asyncio.to_thread(emit, first.pk, "job_completed", duration_ms=1, result={})
            live = await receive(ws, 3)
            # A resume message replays after a row id, here the first one.
            await ws.send(json.dumps({"last_event_id": live[0]["id"]}))
            replayed = await receive(ws, 2)
            return live, replayed

    live, replayed = asyncio.run(run())
    assert [(m["data"]["job_id"], m["event"]) for m in live] == [
        (str(first.pk), "job_started"),
        (str(second.pk), "job_started"),
        (str(first.pk), "job_completed"),
    ]
    pks = list(
        JobEvent.objects.filter(job__submitted_by=alice).order_by("pk").values_list("pk", flat=True)
    )
    assert [m["id"] for m in live] == pks
    assert [m["id"] for m in replayed] == pks[1:]


def test_it_leaves_the_group_when_sockets_close(stream_server, alice, alice_token):
    job = make_job(alice)
    emit(job.pk, "job_started")

    async def run() -> None:
        for _ in range(50):
            async with ws_connect(
                stream_server, job_ws(stream_server, job.pk), token_header(alice_token)
            ) as ws:
                await receive(ws, 1)

    asyncio.run(run())
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        key = f"asgi:group:{job_group(job.pk)}"
        deadline = time.monotonic() + 3
        while client.zcard(key) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.zcard(key) == 0
        client.close()
    emit(job.pk, "job_cancelled")

    async def last() -> list[dict[str, Any]]:
        async with ws_connect(
            stream_server, job_ws(stream_server, job.pk), token_header(alice_token)
        ) as ws:
            return await receive_all(ws)

    assert [m["event"] for m in asyncio.run(last())] == ["job_started", "job_cancelled"]
