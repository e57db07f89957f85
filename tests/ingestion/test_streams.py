"""GET /api/v1/stream/{job_id} and GET /api/v1/stream: SSE against a real Daphne process."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from ingestion.consumers import JobStreamConsumer
from ingestion.events import job_group
from ingestion.models import JobEvent
from ingestion.stream_hub import Subscription, get_hub
from tests.ingestion.conftest import (
    RUN,
    StreamReader,
    emit,
    emit_run,
    make_job,
    token_header,
)

pytestmark = pytest.mark.django_db(transaction=True)


def job_url(server, job) -> str:
    return f"{server.base}/api/v1/stream/{job.pk}"


def test_it_streams_every_event_type_in_order(stream_server, alice, alice_token):
    job = make_job(alice)
    reader = StreamReader(job_url(stream_server, job), token_header(alice_token)).wait_open()
    emit_run(job.pk)
    reader.wait_end()
    events = reader.events()
    assert [(e.event, e.data.get("stage")) for e in events] == [
        (name, fields.get("stage")) for name, fields in RUN
    ]
    assert [e.seq for e in events] == list(range(1, len(RUN) + 1))
    assert all(e.data["job_id"] == str(job.pk) and e.data["timestamp"] for e in events)
    assert events[3].data["duration_ms"] == 3200
    assert events[-1].data["result"]["title"] == "X"
    assert reader.ended_by_server


def test_it_sends_the_sse_headers(stream_server, alice, alice_token):
    job = make_job(alice)
    emit(job.pk, "job_started")
    emit(job.pk, "job_cancelled")
    reader = StreamReader(job_url(stream_server, job), token_header(alice_token)).wait_end()
    headers = reader.response_headers
    assert reader.status == 200
    assert headers is not None
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert headers["connection"].lower() == "keep-alive"


def test_it_sends_heartbeats_with_the_short_setting(stream_server, alice, alice_token):
    job = make_job(alice)
    reader = StreamReader(job_url(stream_server, job), token_header(alice_token)).wait_open()
    time.sleep(1.6)  # heartbeat every 0.5 s on the test server
    beats = reader.heartbeats()
    assert len(beats) >= 2
    assert all(b.id is None and b.data["job_id"] == str(job.pk) for b in beats)
    assert all(b.data["timestamp"].endswith("Z") for b in beats)
    emit(job.pk, "error", stage="extract", error="Failed to fetch URL", reason="fetch_timeout")
    reader.wait_end()


@pytest.mark.parametrize("final", ["job_completed", "error", "job_cancelled"])
def test_it_closes_after_the_last_event(stream_server, alice, alice_token, final):
    job = make_job(alice)
    reader = StreamReader(job_url(stream_server, job), token_header(alice_token)).wait_open()
    emit(job.pk, "job_started")
    emit(job.pk, final)
    reader.wait_end(10)
    assert reader.ended_by_server
    assert [e.event for e in reader.events()] == ["job_started", final]


def test_it_replays_a_finished_job_and_closes(stream_server, alice, alice_token):
    job = make_job(alice)
    emit_run(job.pk)
    reader = StreamReader(job_url(stream_server, job), token_header(alice_token)).wait_end(10)
    assert [e.seq for e in reader.events()] == list(range(1, len(RUN) + 1))


def test_it_answers_404_for_an_unknown_or_foreign_job(stream_server, alice, bob, alice_token):
    bobs = make_job(bob)
    for path in (uuid.uuid4(), "not-a-uuid", bobs.pk):
        url = f"{stream_server.base}/api/v1/stream/{path}"
        response = httpx.get(url, headers=token_header(alice_token), timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]
        assert response.headers["content-type"] == "application/json"


def test_it_answers_401_without_credentials(stream_server, alice):
    job = make_job(alice)
    for headers in ({}, token_header("not-a-real-token")):
        for url in (job_url(stream_server, job), f"{stream_server.base}/api/v1/stream"):
            response = httpx.get(url, headers=headers, timeout=10)
            assert response.status_code == 401
            assert response.json()["error"] == "authentication required"


def test_it_accepts_the_session_cookie(stream_server, alice):
    job = make_job(alice)
    emit_run(job.pk)
    client = Client()
    client.force_login(alice)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    reader = StreamReader(job_url(stream_server, job), {"Cookie": cookie}).wait_end()
    assert len(reader.events()) == len(RUN)


def test_it_answers_400_for_a_bad_last_event_id(stream_server, alice, alice_token):
    job = make_job(alice)
    url = f"{job_url(stream_server, job)}?last_event_id=soon"
    response = httpx.get(url, headers=token_header(alice_token), timeout=10)
    assert response.status_code == 400
    assert response.json()["field"] == "last_event_id"


def test_it_gives_two_clients_identical_sequences(stream_server, alice, alice_token):
    job = make_job(alice)
    url = job_url(stream_server, job)
    first = StreamReader(url, token_header(alice_token)).wait_open()
    emitter = threading.Thread(target=_emit_slowly, args=(job.pk, 30))
    emitter.start()
    time.sleep(0.05)
    second = StreamReader(url, token_header(alice_token)).wait_open()
    emitter.join()
    ones = [(e.seq, e.event, e.data) for e in first.wait_end().events()]
    twos = [(e.seq, e.event, e.data) for e in second.wait_end().events()]
    assert ones == twos
    assert [seq for seq, _, _ in ones] == list(range(1, 32))


def test_it_resumes_after_last_event_id_with_exactly_the_rest(stream_server, alice, alice_token):
    job = make_job(alice)
    emit_run(job.pk, RUN[:5])
    headers = {**token_header(alice_token), "Last-Event-ID": "2"}
    reader = StreamReader(job_url(stream_server, job), headers).wait_open()
    assert [e.seq for e in reader.wait_for(3)] == [3, 4, 5]
    emit_run(job.pk, RUN[5:])
    assert [e.seq for e in reader.wait_end().events()] == list(range(3, len(RUN) + 1))

    query = StreamReader(
        f"{job_url(stream_server, job)}?last_event_id=7", token_header(alice_token)
    )
    assert [e.seq for e in query.wait_end().events()] == [8, 9]
    done = StreamReader(
        job_url(stream_server, job), {**token_header(alice_token), "Last-Event-ID": "9"}
    )
    assert done.wait_end().events() == []
    assert done.ended_by_server


def test_it_misses_nothing_when_connecting_mid_job(stream_server, alice, alice_token):
    job = make_job(alice)
    count = 120
    emitter = threading.Thread(target=_emit_slowly, args=(job.pk, count))
    emitter.start()
    readers: list[StreamReader] = []
    while emitter.is_alive() and len(readers) < 8:
        # Connect at different points of the run: each sees all of it exactly once.
        time.sleep(0.04)
        readers.append(StreamReader(job_url(stream_server, job), token_header(alice_token)))
    emitter.join()
    assert len(readers) >= 2
    for reader in readers:
        seqs = [e.seq for e in reader.wait_end().events()]
        assert seqs == list(range(1, count + 2))
    resumed = StreamReader(
        job_url(stream_server, job), {**token_header(alice_token), "Last-Event-ID": "60"}
    )
    assert [e.seq for e in resumed.wait_end().events()] == list(range(61, count + 2))


def _emit_slowly(job_id: uuid.UUID, count: int) -> None:
    emit(job_id, "job_started")
    for n in range(count - 1):
        emit(job_id, "stage_progress", stage="extract", percent=n % 100, message=f"step {n}")
        time.sleep(0.003)
    emit(job_id, "job_completed", duration_ms=1, result={})


def test_it_frees_everything_when_clients_disconnect(stream_server, alice, alice_token):
    job = make_job(alice)
    emit(job.pk, "job_started")
    for _ in range(100):
        with httpx.stream("GET", job_url(stream_server, job), headers=token_header(alice_token)):
            pass  # the headers arrived; hang up
    if settings.REDIS_URL:
        # The server's one channel for this job leaves the group within a second.
        deadline = time.monotonic() + 3
        while _group_size(job.pk) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group_size(job.pk) == 0
    # And the server still streams.
    emit(job.pk, "job_completed", duration_ms=1, result={})
    reader = StreamReader(job_url(stream_server, job), token_header(alice_token)).wait_end()
    assert [e.seq for e in reader.events()] == [1, 2]


def _group_size(job_id: uuid.UUID) -> int:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.zcard(f"asgi:group:{job_group(job_id)}"))
    finally:
        client.close()


def test_it_returns_tasks_and_groups_to_baseline_after_disconnects(alice):
    """100 connect/disconnect cycles through the consumer in this process, on the real layer."""
    job = make_job(alice)
    emit(job.pk, "job_started")
    app = JobStreamConsumer.as_asgi()
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/api/v1/stream/{job.pk}",
        "query_string": b"",
        "headers": [],
        "user": alice,
        "url_route": {"args": (), "kwargs": {"job_id": str(job.pk)}},
    }

    async def cycle() -> None:
        inbox: asyncio.Queue[dict] = asyncio.Queue()
        got_body = asyncio.Event()

        async def send(message: dict) -> None:
            if message["type"] == "http.response.body" and b"id: 1" in message["body"]:
                got_body.set()

        await inbox.put({"type": "http.request", "body": b"", "more_body": False})
        task = asyncio.create_task(app(scope, inbox.get, send))
        await asyncio.wait_for(got_body.wait(), 10)
        await inbox.put({"type": "http.disconnect"})
        await asyncio.wait_for(task, 1)  # freed within a second

    async def run() -> None:
        hub = get_hub()
        await cycle()  # warm up: thread pools, layer connections
        await hub.drained()
        baseline = len(asyncio.all_tasks())
        for _ in range(100):
            await cycle()
        await hub.drained()
        assert len(asyncio.all_tasks()) == baseline
        assert hub.topics == {}
        # type(), not isinstance(): a dead weak proxy among the objects would raise.
        assert not [o for o in gc.get_objects() if type(o) is Subscription]
        if settings.REDIS_URL:
            assert _group_size(job.pk) == 0

    asyncio.run(run())


def test_it_streams_all_of_the_users_own_jobs(stream_server, alice, bob, alice_token, staff):
    from rest_framework.authtoken.models import Token

    url = f"{stream_server.base}/api/v1/stream"
    staff_reader = StreamReader(url, token_header(Token.objects.create(user=staff).key))
    reader = StreamReader(url, token_header(alice_token)).wait_open()
    staff_reader.wait_open()
    time.sleep(0.3)
    first, second, bobs = make_job(alice), make_job(alice), make_job(bob)
    emit(first.pk, "job_started")
    emit(bobs.pk, "job_started")
    emit(second.pk, "job_started")
    emit(first.pk, "job_completed", duration_ms=5, result={})
    emit(second.pk, "error", stage="extract", error="nope", reason="http_status")
    events = reader.wait_for(4)
    assert [(e.data["job_id"], e.event) for e in events] == [
        (str(first.pk), "job_started"),
        (str(second.pk), "job_started"),
        (str(first.pk), "job_completed"),
        (str(second.pk), "error"),
    ]
    pks = list(
        JobEvent.objects.filter(job__submitted_by=alice).order_by("pk").values_list("pk", flat=True)
    )
    assert [e.seq for e in events] == pks  # the user stream's id is the row id
    time.sleep(0.7)
    assert not reader.ended.is_set()  # never ends by itself
    assert reader.heartbeats()
    assert staff_reader.events() == []  # staff see their own jobs here, not everyone's
    reader.stop()
    staff_reader.stop()

    since = StreamReader(f"{url}?last_event_id={pks[1]}", token_header(alice_token))
    assert [e.seq for e in since.wait_for(2)] == pks[2:]
    since.stop()
    start = (timezone.now() - timedelta(minutes=1)).isoformat()
    replay = StreamReader(f"{url}?since={start.replace('+', '%2B')}", token_header(alice_token))
    assert [e.seq for e in replay.wait_for(4)] == pks
    replay.stop()
