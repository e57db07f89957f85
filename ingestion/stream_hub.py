"""Per-process fan-out of live job events to the streams that watch them.

Each Daphne process subscribes once per watched job (and once per watching
user), however many clients watch, and copies every event to their in-memory
queues: a channel-layer channel per client tops out near 9k frames/s, a loop
over local queues does not. Where the events come from depends on the
deployment:

- with `REDIS_URL`, the topic's own channel-layer channel is added to the
  group `job.<id>` (or `user.<uid>.jobs`) that `ingestion.events` publishes to;
- on the embedded default (in-memory layer, worker in another process) the
  topic reads the `JobEvent` table every `LIBRARIAN_SSE_POLL_S` seconds.

Deliveries may repeat or skip ahead (a group message sent before subscribing,
a queue trimmed for a slow client); every stream dedupes by seq and reads any
gap from the table, so a client sees each event once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Max

from ingestion.events import WireEvent, job_group, live_push_enabled, to_wire, user_group
from ingestion.models import Job, JobEvent

log = logging.getLogger(__name__)

# A delivery is (cursor, event): the seq for a job topic, the JobEvent pk for a user topic.
Delivery = tuple[int, WireEvent]

# A client slower than this many queued events is trimmed and re-reads the table.
QUEUE_LIMIT = 1000
# Rows read per query: a replay pages through longer histories.
PAGE = 500


def _wire(event: JobEvent) -> WireEvent:
    return to_wire(event)


@database_sync_to_async
def job_events_after(job_id: uuid.UUID, after: int, upto: int | None = None) -> list[WireEvent]:
    rows = JobEvent.objects.filter(job_id=job_id, seq__gt=after).order_by("seq")
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    return [_wire(e) for e in rows[:PAGE]]


@database_sync_to_async
def user_events_after(
    user_id: int, *, after_pk: int = 0, since: Any = None, limit: int = PAGE
) -> list[Delivery]:
    rows = JobEvent.objects.filter(job__submitted_by_id=user_id, pk__gt=after_pk)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    return [(e.pk, _wire(e)) for e in rows.order_by("pk")[:limit]]


@database_sync_to_async
def job_newest_event_type(job_id: uuid.UUID) -> str | None:
    return (
        JobEvent.objects.filter(job_id=job_id)
        .order_by("-seq")
        .values_list("type", flat=True)
        .first()
    )


@database_sync_to_async
def _job_last_seq(job_id: uuid.UUID) -> int:
    return Job.objects.filter(pk=job_id).values_list("last_seq", flat=True).first() or 0


@database_sync_to_async
def last_event_pk() -> int:
    return JobEvent.objects.aggregate(top=Max("pk"))["top"] or 0


@database_sync_to_async
def _job_events_with_pk(job_id: uuid.UUID, after: int, upto: int) -> list[Delivery]:
    rows = JobEvent.objects.filter(job_id=job_id, seq__gt=after, seq__lte=upto).order_by("seq")
    return [(e.pk, _wire(e)) for e in rows]


@dataclass(eq=False)
class Subscription:
    """One client's view of a topic: a bounded queue and a wake-up flag."""

    topic: Topic
    items: deque[Delivery] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when deliveries were dropped (slow client) or the source broke.
    lagged: bool = False
    broken: bool = False

    def put(self, batch: list[Delivery]) -> None:
        if len(self.items) + len(batch) > QUEUE_LIMIT:
            self.items.clear()
            self.lagged = True
        else:
            self.items.extend(batch)
        self.wake.set()

    async def next_batch(self, timeout: float | None) -> list[Delivery] | None:
        """Deliveries waiting now, waiting up to `timeout`; None when it passed."""
        if not self.items and not self.lagged and not self.broken:
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                return None
        batch = list(self.items)
        self.items.clear()
        return batch


class Topic:
    """One source of events (a job or a user) shared by every local subscriber."""

    def __init__(self, hub: StreamHub, key: str) -> None:
        self.hub = hub
        self.key = key
        self.subscribers: set[Subscription] = set()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run(), name=f"stream-topic {key}")

    async def _run(self) -> None:
        try:
            await self.open()
            self.ready.set_result(None)
            await self.follow()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.warning("live event source failed", extra={"topic": self.key}, exc_info=True)
            if not self.ready.done():
                self.ready.set_exception(exc)
                self.ready.exception()  # retrieved here too, so an unawaited one never warns
            self.hub.forget(self)
            for sub in self.subscribers:
                sub.broken = True
                sub.wake.set()
        finally:
            await self.close()

    def fan_out(self, batch: list[Delivery]) -> None:
        if batch:
            for sub in self.subscribers:
                sub.put(batch)

    async def open(self) -> None:
        """Start listening; every event committed after this returns gets delivered."""

    async def follow(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listening (runs under cancellation, so it must not raise)."""


class _PushTopic(Topic):
    """Delivery through the channel layer: one channel of our own per topic."""

    channel = ""

    def group(self) -> str:
        raise NotImplementedError

    async def open(self) -> None:
        layer = get_channel_layer()
        assert layer is not None
        self.channel = await layer.new_channel()
        await layer.group_add(self.group(), self.channel)

    async def follow(self) -> None:
        layer = get_channel_layer()
        assert layer is not None
        while True:
            message = await layer.receive(self.channel)
            if message.get("type") == "job.event":
                await self.received(message)

    async def received(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        layer = get_channel_layer()
        if layer is None or not self.channel:
            return
        try:
            await layer.group_discard(self.group(), self.channel)
        except Exception:  # noqa: BLE001
            # Redis gone: the membership expires with the layer's group_expiry.
            log.warning("group_discard failed", extra={"topic": self.key}, exc_info=True)


class JobPushTopic(_PushTopic):
    def __init__(self, hub: StreamHub, key: str, job_id: uuid.UUID) -> None:
        self.job_id = job_id
        super().__init__(hub, key)

    def group(self) -> str:
        return job_group(self.job_id)

    async def received(self, message: dict[str, Any]) -> None:
        wire: WireEvent = {"id": message["id"], "event": message["event"], "data": message["data"]}
        self.fan_out([(wire["id"], wire)])


class UserPushTopic(_PushTopic):
    """The user group's messages name (job, seq); the stream's id is the row's pk."""

    def __init__(self, hub: StreamHub, key: str, user_id: int) -> None:
        self.user_id = user_id
        self.seen: dict[str, int] = {}
        super().__init__(hub, key)

    def group(self) -> str:
        return user_group(self.user_id)

    async def received(self, message: dict[str, Any]) -> None:
        job_id = str(message["data"].get("job_id", ""))
        seq = int(message["id"])
        after = self.seen.get(job_id, seq - 1)
        if not job_id or seq <= after:
            return
        # One read per event per process (not per client), which also fills a gap.
        rows = await _job_events_with_pk(uuid.UUID(job_id), after, seq)
        if rows:
            self.seen[job_id] = rows[-1][1]["id"]
        self.fan_out(rows)


class JobPollTopic(Topic):
    def __init__(self, hub: StreamHub, key: str, job_id: uuid.UUID) -> None:
        self.job_id = job_id
        self.cursor = 0
        super().__init__(hub, key)

    async def open(self) -> None:
        self.cursor = await _job_last_seq(self.job_id)

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(settings.LIBRARIAN_SSE_POLL_S)
            try:
                events = await job_events_after(self.job_id, self.cursor)
            except DatabaseError:
                # A locked or restarting database is transient: try again next tick.
                log.warning("event poll failed", extra={"topic": self.key}, exc_info=True)
                continue
            if events:
                self.cursor = events[-1]["id"]
                self.fan_out([(e["id"], e) for e in events])


class UserPollTopic(Topic):
    def __init__(self, hub: StreamHub, key: str, user_id: int) -> None:
        self.user_id = user_id
        self.cursor = 0
        super().__init__(hub, key)

    async def open(self) -> None:
        # On SQLite (the only polling deployment) pks are assigned in commit order.
        self.cursor = await last_event_pk()

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(settings.LIBRARIAN_SSE_POLL_S)
            try:
                rows = await user_events_after(self.user_id, after_pk=self.cursor)
            except DatabaseError:
                log.warning("event poll failed", extra={"topic": self.key}, exc_info=True)
                continue
            if rows:
                self.cursor = rows[-1][0]
                self.fan_out(rows)


class StreamHub:
    """The topics of one event loop, each alive while someone subscribes to it."""

    def __init__(self) -> None:
        self.topics: dict[str, Topic] = {}
        self.closing: set[asyncio.Task[None]] = set()

    async def watch_job(self, job_id: uuid.UUID) -> Subscription:
        kind = JobPushTopic if live_push_enabled() else JobPollTopic
        return await self._subscribe(f"job:{job_id}", lambda key: kind(self, key, job_id))

    async def watch_user(self, user_id: int) -> Subscription:
        kind = UserPushTopic if live_push_enabled() else UserPollTopic
        return await self._subscribe(f"user:{user_id}", lambda key: kind(self, key, user_id))

    async def _subscribe(self, key: str, make: Callable[[str], Topic]) -> Subscription:
        topic = self.topics.get(key)
        if topic is None:
            topic = self.topics[key] = make(key)
        sub = Subscription(topic)
        topic.subscribers.add(sub)
        try:
            # Shielded: one client giving up must not cancel the others' wait.
            await asyncio.shield(topic.ready)
        except BaseException:
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Leave the topic; the last one out stops it (in the background, so never cut short)."""
        topic = sub.topic
        topic.subscribers.discard(sub)
        if topic.subscribers:
            return
        self.forget(topic)
        if not topic.task.done():
            topic.task.cancel()
            self.closing.add(topic.task)
            topic.task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self.closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("stream topic ended with an error", exc_info=task.exception())

    def forget(self, topic: Topic) -> None:
        if self.topics.get(topic.key) is topic:
            del self.topics[topic.key]

    async def drained(self, timeout: float = 5.0) -> None:
        """Wait until stopped topics have finished closing (tests and shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.closing and loop.time() < deadline:
            await asyncio.sleep(0.01)


_hubs: dict[asyncio.AbstractEventLoop, StreamHub] = {}


def get_hub() -> StreamHub:
    """The hub of the running event loop (Daphne runs one loop per process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for old in [other for other in _hubs if other.is_closed()]:
            del _hubs[old]
        hub = _hubs[loop] = StreamHub()
    return hub


async def run_cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to finish its cleanup."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


__all__ = [
    "Delivery",
    "StreamHub",
    "Subscription",
    "get_hub",
    "job_events_after",
    "job_newest_event_type",
    "last_event_pk",
    "run_cancelled",
    "user_events_after",
]
