"""Live progress streams: SSE and WebSocket consumers, and token authentication for them.

- `GET /api/v1/stream/{job_id}` (SSE) and `ws /ws/v1/stream/{job_id}`: one job's
  events; `id` is the event's seq in its job. Replay with `Last-Event-ID`,
  `?last_event_id=N` or (WebSocket) a `{"last_event_id": N}` message. They end
  after `job_completed`, `error` or `job_cancelled`.
- `GET /api/v1/stream` (SSE) and `ws /ws/v1/jobs`: every event of the user's own
  jobs (staff too: their own), each carrying `job_id`; `id` is the event's row
  id (`JobEvent.pk`), which `Last-Event-ID` / `?last_event_id=` resume after;
  `?since=<ISO time>` replays from a time instead. They never end by themselves.

Consumers only authorise, subscribe and forward: `ingestion.stream_hub` holds
the one subscription per job per process and the table reads that fill gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.http import AsyncHttpConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ingestion.access import job_for_user
from ingestion.events import FINAL_EVENTS, WireEvent, format_heartbeat, format_sse
from ingestion.models import Job
from ingestion.stream_auth import TokenAuthMiddleware
from ingestion.stream_hub import (
    PAGE,
    Delivery,
    get_hub,
    job_events_after,
    job_newest_event_type,
    last_event_pk,
    run_cancelled,
    user_events_after,
)

log = logging.getLogger(__name__)

# TokenAuthMiddleware is re-exported: the routing takes everything it needs from here.
__all__ = [
    "JobSocketConsumer",
    "JobStreamConsumer",
    "TokenAuthMiddleware",
    "UserSocketConsumer",
    "UserStreamConsumer",
]

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
# Sent first so the headers leave at once; EventSource waits this long to reconnect.
SSE_PREAMBLE = b"retry: 1000\n\n"

# WebSocket close codes: 4000 + the HTTP status the SSE endpoint would answer.
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class StreamBroken(Exception):
    """The live source of a stream failed; the client should reconnect and resume."""


def _authenticated(scope: dict[str, Any]) -> Any:
    user = scope.get("user")
    return user if user is not None and user.is_authenticated else None


# ---------------------------------------------------------------- request parsing


class BadRequest(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _query(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode("latin1"))
    return {name: values[-1] for name, values in parsed.items()}


def _resume_point(scope: dict[str, Any]) -> int:
    """The id after which to resume: `Last-Event-ID` first, then `?last_event_id=`."""
    raw = _query(scope).get("last_event_id", "")
    for name, value in scope.get("headers", []):
        if name.lower() == b"last-event-id":
            raw = value.decode("latin1")
    return _as_event_id(raw.strip() or "0")


def _as_event_id(raw: Any) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or isinstance(raw, bool):
        raise BadRequest("last_event_id", "last_event_id must be a non-negative integer")
    return value


def _since(scope: dict[str, Any]) -> dt.datetime | None:
    raw = _query(scope).get("since")
    if raw is None:
        return None
    try:
        when = parse_datetime(raw.strip().replace(" ", "+"))
    except ValueError:
        when = None
    if when is None:
        raise BadRequest("since", "since must be an ISO 8601 time")
    return when if timezone.is_aware(when) else timezone.make_aware(when, dt.UTC)


async def _job_for(user: Any, job_id: str) -> Job:
    return await database_sync_to_async(job_for_user)(user, job_id)


# ---------------------------------------------------------------- the event sequences


def _heartbeat_s() -> float:
    return float(settings.LIBRARIAN_SSE_HEARTBEAT_S)


async def follow_job(
    job: Job, after: int, heartbeat_s: float | None
) -> AsyncGenerator[WireEvent | None, None]:
    """The job's events after `after`, each once and in order; None means "send a heartbeat".

    Subscribes before reading the backlog, so nothing committed in between is
    missed. Ends after a final event that is the newest one known: a retried
    job's log goes on past its earlier `error`.
    """
    hub = get_hub()
    sub = await hub.watch_job(job.pk)
    last = after
    try:
        newest: str | None = None
        async for event in _job_replay(job.pk, last):
            yield event
            last, newest = event["id"], event["event"]
        if newest is None and last > 0:
            newest = await job_newest_event_type(job.pk)
        if newest in FINAL_EVENTS or job.is_terminal:
            # A terminal status commits with its final event, so a job that was
            # finished when we looked has nothing more to send.
            return
        while True:
            batch = await sub.next_batch(heartbeat_s)
            if batch is None:
                yield None
                continue
            if sub.broken:
                raise StreamBroken(f"live events for job {job.pk} stopped")
            if sub.lagged:
                sub.lagged = False
                batch = [(e["id"], e) async for e in _job_replay(job.pk, last)]
            fresh: list[WireEvent] = []
            for seq, event in batch:
                if seq <= last:
                    continue  # already sent (from the backlog or an earlier push)
                if seq > last + 1:
                    # A push skipped ahead: the missing ones are in the table.
                    fresh += [e async for e in _job_replay(job.pk, last, seq - 1)]
                fresh.append(event)
                last = seq
            for event in fresh:
                yield event
            if fresh and fresh[-1]["event"] in FINAL_EVENTS:
                return
    finally:
        hub.unsubscribe(sub)


async def _job_replay(
    job_id: uuid.UUID, after: int, upto: int | None = None
) -> AsyncIterator[WireEvent]:
    while True:
        page = await job_events_after(job_id, after, upto)
        for event in page:
            yield event
        if len(page) < PAGE:
            return
        after = page[-1]["id"]


async def follow_user(
    user_id: int, after_pk: int, since: dt.datetime | None, heartbeat_s: float | None
) -> AsyncGenerator[Delivery | None, None]:
    """(row id, event) for every event of the user's jobs; None means "send a heartbeat".

    Without a replay point it starts at the newest row; duplicates are dropped
    per job by seq (each job's events arrive in seq order from every source).
    """
    hub = get_hub()
    sub = await hub.watch_user(user_id)
    sent: dict[str, int] = {}

    def fresh(event: WireEvent) -> bool:
        job_id = str(event["data"].get("job_id", ""))
        if event["id"] <= sent.get(job_id, 0):
            return False
        sent[job_id] = event["id"]
        return True

    try:
        last_pk = after_pk
        if after_pk or since is not None:
            async for pk, event in _user_replay(user_id, after_pk, since):
                last_pk = pk
                if fresh(event):
                    yield pk, event
        else:
            last_pk = await last_event_pk()
        while True:
            batch = await sub.next_batch(heartbeat_s)
            if batch is None:
                yield None
                continue
            if sub.broken:
                raise StreamBroken(f"live events for user {user_id} stopped")
            if sub.lagged:
                sub.lagged = False
                batch = [row async for row in _user_replay(user_id, last_pk, None)]
            for pk, event in batch:
                last_pk = max(last_pk, pk)
                if fresh(event):
                    yield pk, event
    finally:
        hub.unsubscribe(sub)


async def _user_replay(
    user_id: int, after_pk: int, since: dt.datetime | None
) -> AsyncIterator[Delivery]:
    while True:
        page = await user_events_after(user_id, after_pk=after_pk, since=since)
        for row in page:
            yield row
        if len(page) < PAGE:
            return
        after_pk = page[-1][0]


# ---------------------------------------------------------------- SSE


class _EventStreamConsumer(AsyncHttpConsumer):
    """An SSE response that notices the client leaving and always ends cleanly.

    `AsyncHttpConsumer` reads no ASGI message while `handle()` runs, so it never
    sees `http.disconnect`; and an exception after the response started stops
    Daphne's cleanup of later dead streams. So this runs the response as a task
    beside a watcher of the ASGI receive, cancels it when the client goes, and
    catches everything. There is no per-connection channel: the hub subscribes.
    """

    response_started = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        while True:  # the request body (ignored; these are GETs)
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if not message.get("more_body"):
                break
        respond = asyncio.create_task(self._respond())
        watch = asyncio.create_task(_until_disconnect(receive))
        try:
            await asyncio.wait({respond, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await run_cancelled(watch)
            await run_cancelled(respond)

    async def _respond(self) -> None:
        try:
            await self.stream()
        except asyncio.CancelledError:
            raise
        except BadRequest as exc:
            await self.send_error(400, str(exc), exc.field)
            return
        except Exception:  # noqa: BLE001
            log.exception("event stream failed", extra={"path": self.scope.get("path")})
            if not self.response_started:
                await self.send_error(500, "the event stream failed; reconnect to resume")
                return
        if self.response_started:
            await self.send_body(b"", more_body=False)

    async def stream(self) -> None:
        raise NotImplementedError

    async def send_headers(self, *, status: int = 200, headers: Any = None) -> None:
        self.response_started = True
        await super().send_headers(status=status, headers=headers)

    async def send_error(self, status: int, message: str, field: str = "") -> None:
        body = json.dumps({"error": message, "field": field}).encode()
        await super().send_headers(status=status, headers=[(b"content-type", b"application/json")])
        await self.send_body(body)

    async def open_stream(self) -> None:
        await self.send_headers(headers=SSE_HEADERS)
        await self.send_body(SSE_PREAMBLE, more_body=True)


async def _until_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class JobStreamConsumer(_EventStreamConsumer):
    """GET /api/v1/stream/{job_id}: one job's events as SSE, ending after the final one."""

    async def stream(self) -> None:
        user = _authenticated(self.scope)
        if user is None:
            await self.send_error(401, "authentication required")
            return
        after = _resume_point(self.scope)
        try:
            job = await _job_for(user, self.scope["url_route"]["kwargs"]["job_id"])
        except Http404:
            await self.send_error(404, "no such job", "job_id")
            return
        await self.open_stream()
        job_id = str(job.pk)
        events = follow_job(job, after, _heartbeat_s())
        async with contextlib.aclosing(events):
            async for event in events:
                frame = format_heartbeat(job_id) if event is None else format_sse(event)
                await self.send_body(frame, more_body=True)


class UserStreamConsumer(_EventStreamConsumer):
    """GET /api/v1/stream: every event of the user's own jobs as SSE; `id:` is the row id."""

    async def stream(self) -> None:
        user = _authenticated(self.scope)
        if user is None:
            await self.send_error(401, "authentication required")
            return
        after, since = _resume_point(self.scope), _since(self.scope)
        await self.open_stream()
        events = follow_user(user.pk, after, since, _heartbeat_s())
        async with contextlib.aclosing(events):
            async for row in events:
                if row is None:
                    frame = format_heartbeat()
                else:
                    pk, event = row
                    frame = format_sse({"id": pk, "event": event["event"], "data": event["data"]})
                await self.send_body(frame, more_body=True)


# ---------------------------------------------------------------- WebSocket


class _SocketStream(AsyncJsonWebsocketConsumer):
    """A WebSocket that forwards a stream from a task of its own.

    No per-socket channel-layer channel (the alias names no layer): the hub
    subscribes once per process, and a socket only forwards.
    """

    channel_layer_alias = "ingestion.stream_hub"
    pump: asyncio.Task[None] | None = None
    user: Any = None

    async def connect(self) -> None:
        await self.accept()
        self.user = _authenticated(self.scope)
        if self.user is None:
            await self.close(CLOSE_UNAUTHENTICATED, "authentication required")
            return
        try:
            after = _as_event_id(_query(self.scope).get("last_event_id", "0"))
            await self.prepare()
        except BadRequest as exc:
            await self.close(CLOSE_BAD_REQUEST, str(exc)[:120])
            return
        except Http404:
            await self.close(CLOSE_NOT_FOUND, "no such job")
            return
        self.start(after)

    async def prepare(self) -> None:
        """Checks before streaming (raise BadRequest or Http404)."""

    def start(self, after: int) -> None:
        self.pump = asyncio.create_task(self._pump(after))

    async def _pump(self, after: int) -> None:
        try:
            await self.forward(after)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("socket stream failed", extra={"path": self.scope.get("path")})
            await self.close(1011, "stream failed; reconnect to resume")

    async def forward(self, after: int) -> None:
        raise NotImplementedError

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            content = json.loads(text_data or "")
        except ValueError:
            await self.send_json({"error": 'send JSON: {"last_event_id": N}', "field": ""})
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.user is None or not isinstance(content, dict) or "last_event_id" not in content:
            await self.send_json({"error": 'expected {"last_event_id": N}', "field": ""})
            return
        try:
            after = _as_event_id(content["last_event_id"])
        except BadRequest as exc:
            await self.send_json({"error": str(exc), "field": exc.field})
            return
        # Resume: restart the stream so it sends exactly the events after `after`.
        if self.pump is not None:
            await run_cancelled(self.pump)
        self.start(after)

    async def disconnect(self, code: int) -> None:
        if self.pump is not None:
            await run_cancelled(self.pump)


class JobSocketConsumer(_SocketStream):
    """ws /ws/v1/stream/{job_id}: one job's events as JSON {"id", "event", "data"}."""

    job: Job

    async def prepare(self) -> None:
        self.job = await _job_for(self.user, self.scope["url_route"]["kwargs"]["job_id"])

    async def forward(self, after: int) -> None:
        job = await database_sync_to_async(Job.objects.get)(pk=self.job.pk)
        events = follow_job(job, after, None)
        async with contextlib.aclosing(events):
            async for event in events:
                if event is not None:
                    await self.send_json(event)
        await self.close(1000)


class UserSocketConsumer(_SocketStream):
    """ws /ws/v1/jobs: every event of the user's own jobs; `id` is the row id."""

    since: dt.datetime | None = None

    async def prepare(self) -> None:
        self.since = _since(self.scope)

    async def forward(self, after: int) -> None:
        events = follow_user(self.user.pk, after, self.since, None)
        async with contextlib.aclosing(events):
            async for row in events:
                if row is not None:
                    pk, event = row
                    await self.send_json({"id": pk, "event": event["event"], "data": event["data"]})
