"""Observability: /metrics from the event log, its access rules, and request ids in logs."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ingestion.events import emit_event
from ingestion.models import Job, Status
from librarian.logging import JsonFormatter
from librarian.metrics import stream_client_counts
from librarian.request_id import HEADER, RequestIdFilter, RequestIdMiddleware, current_request_id
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db


def job(status: str = Status.COMPLETED, *, waited_s: float = 0.0, **fields: Any) -> Job:
    url = f"https://example.com/{uuid.uuid4().hex[:8]}"
    created = timezone.now() - timedelta(minutes=5)
    started = created + timedelta(seconds=waited_s) if status != Status.QUEUED else None
    return Job.objects.create(
        url=url,
        canonical_url=url,
        status=status,
        created_at=created,
        started_at=started,
        **fields,
    )


def scrape(client: Client, **headers: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


@pytest.fixture
def staff_browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_it_counts_jobs_by_status_and_failure_reason(staff_browser):
    job(Status.COMPLETED)
    job(Status.FAILED, error_type="http_status")
    job(Status.FAILED, error_type="http_status")
    job(Status.FAILED, error_type="fetch_timeout")
    job(Status.QUEUED)
    samples = scrape(staff_browser)
    jobs = samples["librarian_jobs"]
    assert jobs[(("status", "completed"),)] == 1
    assert jobs[(("status", "failed"),)] == 3
    assert jobs[(("status", "queued"),)] == 1
    assert jobs[(("status", "cancelled"),)] == 0
    failed = samples["librarian_jobs_failed"]
    assert failed == {(("reason", "fetch_timeout"),): 1, (("reason", "http_status"),): 2}
    assert samples["librarian_queue_oldest_age_seconds"][()] >= 299


def test_it_builds_stage_histograms_from_completed_stage_events(staff_browser):
    first, second = job(), job()
    emit_event(first.pk, "stage_completed", stage="extract", duration_ms=40)
    emit_event(first.pk, "stage_completed", stage="transform", duration_ms=3200)
    emit_event(second.pk, "stage_completed", stage="extract", duration_ms=700)
    emit_event(second.pk, "stage_progress", stage="extract", percent=50)
    samples = scrape(staff_browser)
    buckets = samples["librarian_stage_duration_seconds_bucket"]
    assert buckets[(("le", "0.05"), ("stage", "extract"))] == 1
    assert buckets[(("le", "1.0"), ("stage", "extract"))] == 2
    assert buckets[(("le", "2.5"), ("stage", "transform"))] == 0
    assert buckets[(("le", "5.0"), ("stage", "transform"))] == 1
    assert buckets[(("le", "+Inf"), ("stage", "transform"))] == 1
    assert samples["librarian_stage_duration_seconds_count"][(("stage", "extract"),)] == 2
    assert samples["librarian_stage_duration_seconds_sum"][(("stage", "extract"),)] == 0.74


def test_it_measures_queue_wait_and_job_duration(staff_browser):
    job(waited_s=0.3)
    job(waited_s=20)
    job(Status.PROCESSING, waited_s=4000)
    job(Status.QUEUED)
    from_library = job(waited_s=0, result={"from_library": True})
    done = job(waited_s=1)
    emit_event(done.pk, "job_completed", duration_ms=12000, result={})
    emit_event(from_library.pk, "job_completed", duration_ms=0, result={})
    samples = scrape(staff_browser)
    wait = samples["librarian_queue_wait_seconds_bucket"]
    assert wait[(("le", "0.5"),)] == 1
    assert wait[(("le", "1.0"),)] == 2
    assert wait[(("le", "30.0"),)] == 3
    assert wait[(("le", "3600.0"),)] == 3
    assert wait[(("le", "+Inf"),)] == 4
    assert samples["librarian_queue_wait_seconds_sum"][()] == pytest.approx(4021.3)
    durations = samples["librarian_job_duration_seconds_bucket"]
    assert durations[(("le", "10.0"),)] == 0 and durations[(("le", "30.0"),)] == 1
    assert samples["librarian_job_duration_seconds_count"][()] == 1


def test_it_counts_fetch_status_codes(staff_browser):
    a, b = job(), job()
    emit_event(a.pk, "stage_progress", stage="extract", percent=70, status_code=200)
    emit_event(b.pk, "stage_progress", stage="extract", percent=70, status_code=200)
    emit_event(b.pk, "error", stage="extract", reason="http_status", status_code=404, error="x")
    codes = scrape(staff_browser)["librarian_fetch_responses_total"]
    assert codes == {(("code", "200"),): 2, (("code", "404"),): 1}


def test_it_reports_the_library_and_the_process(staff_browser):
    make_item("Alpha article", tier="tier-a")
    samples = scrape(staff_browser)
    assert samples["librarian_library_items"][(("tier", "tier-a"),)] == 1
    assert samples["librarian_library_items"][(("tier", "tier-d"),)] == 0
    assert "librarian_chunks_unindexed" in samples
    assert "process_resident_memory_bytes" in samples
    assert list(samples["librarian_info"]) == [(("version", "1.0.0"),)]


def test_it_counts_open_streams_of_this_process(alice):
    from ingestion.stream_hub import get_hub

    watched = job(Status.PROCESSING)

    async def watch() -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        hub = get_hub()
        subs = [await hub.watch_job(watched.pk) for _ in range(3)]
        subs.append(await hub.watch_user(alice.pk))
        during = await asyncio.to_thread(stream_client_counts)
        for sub in subs:
            hub.unsubscribe(sub)
        await hub.drained()
        return during, await asyncio.to_thread(stream_client_counts)

    during, after = asyncio.run(watch())
    assert during == {"job": (1, 3), "user": (1, 1)}
    assert after == {"job": (0, 0), "user": (0, 0)}


def test_it_asks_anonymous_scrapers_to_authenticate(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_it_refuses_users_who_are_not_staff(alice):
    client = Client()
    client.force_login(alice)
    assert client.get("/metrics").status_code == 403


def test_it_accepts_the_metrics_token(client, settings):
    settings.LIBRARIAN_METRICS_TOKEN = "scrape-me-please"
    assert "librarian_jobs" in scrape(client, Authorization="Bearer scrape-me-please")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_it_accepts_no_token_when_none_is_set(client, settings):
    settings.LIBRARIAN_METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


# ---------------------------------------------------------------- request ids


def echo_request_id(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(current_request_id.get() or "")


def test_it_gives_each_request_an_id_and_echoes_it(rf):
    middleware = RequestIdMiddleware(echo_request_id)
    response = middleware(rf.get("/"))
    rid = response[HEADER]
    assert len(rid) == 32 and response.content.decode() == rid
    assert current_request_id.get() is None  # nothing leaks past the request


def test_it_keeps_a_sane_id_from_the_proxy_and_replaces_a_bad_one(rf):
    middleware = RequestIdMiddleware(echo_request_id)
    kept = middleware(rf.get("/", headers={HEADER: "edge-7f3a:42"}))
    assert kept[HEADER] == "edge-7f3a:42" and kept.content == b"edge-7f3a:42"
    replaced = middleware(rf.get("/", headers={HEADER: "two words\n"}))
    assert replaced[HEADER] != "two words\n" and len(replaced[HEADER]) == 32


def test_it_works_in_an_async_stack(rf):
    async def view(request: Any) -> Any:
        return echo_request_id(request)

    middleware = RequestIdMiddleware(view)
    response = asyncio.run(middleware(rf.get("/", headers={HEADER: "abc-123"})))
    assert response[HEADER] == "abc-123" and response.content == b"abc-123"


def test_it_tags_responses_and_request_logs_through_the_asgi_stack(settings):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    name = "librarian.request_id.RequestIdMiddleware"
    if name not in settings.MIDDLEWARE:
        settings.MIDDLEWARE = [name, *settings.MIDDLEWARE]
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = async_to_sync(AsyncClient().get)("/no-such-page", headers={HEADER: "lb-1"})
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 404 and response[HEADER] == "lb-1"
    assert [getattr(r, "request_id", None) for r in seen] == ["lb-1"]


def test_it_puts_the_request_id_into_json_log_lines():
    record = logging.LogRecord("librarian", logging.INFO, __file__, 1, "hello", None, None)
    record.job_id = "j-1"
    token = current_request_id.set("req-9")
    try:
        assert RequestIdFilter().filter(record) is True
    finally:
        current_request_id.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-9" and line["job_id"] == "j-1"
    assert line["message"] == "hello"
