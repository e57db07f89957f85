"""Automatic retries end to end: a real worker loop against a page that misbehaves."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from django.utils import timezone

from ingestion import services, tasks
from ingestion.models import Job, JobEvent, Status
from tests.conftest import LONG_PARAGRAPHS, article_html

pytestmark = pytest.mark.django_db(transaction=True)


def busy_then_ok(busy_answers: int):
    """A handler that answers 429 with Retry-After: 1 `busy_answers` times, then the article."""
    lock = threading.Lock()
    seen = [0]

    def handler(request: BaseHTTPRequestHandler) -> None:
        with lock:
            seen[0] += 1
            busy = seen[0] <= busy_answers
        body = (
            b"<html><body>slow down</body></html>"
            if busy
            else article_html("Patience pays", LONG_PARAGRAPHS).encode()
        )
        request.send_response(429 if busy else 200)
        if busy:
            request.send_header("Retry-After", "1")
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handler


def work_until_done(job: Job, timeout: float = 30.0) -> list[str | None]:
    """Run the worker task as the queue would: again whenever the job may be claimed."""
    outcomes: list[str | None] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_terminal:
            return outcomes
        if job.not_before is None or job.not_before <= timezone.now():
            outcomes.append(tasks.run_next_job())
        else:
            time.sleep(0.1)
    raise AssertionError(f"job still {job.status} after {timeout} s: {outcomes}")


def test_it_completes_after_two_429s_honouring_retry_after(alice, page_server, settings):
    settings.LIBRARIAN_MAX_ATTEMPTS = 3
    url = page_server.add("/busy", handler=busy_then_ok(2))
    job = services.job_submit(url=url, submitted_by=alice)
    outcomes = work_until_done(job)
    assert outcomes == [f"{job.pk}:retrying", f"{job.pk}:retrying", f"{job.pk}:completed"]
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert job.attempts == 3
    assert job.result is not None and job.result["title"] == "Patience pays"
    assert page_server.hits("/busy") == 3
    retries = [
        e.data["retry"]
        for e in JobEvent.objects.filter(job=job, type="stage_progress")
        if "retry" in e.data
    ]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert {r["reason"] for r in retries} == {"http_status"}
    # Retry-After is a floor under the backoff.
    assert all(r["delay_s"] >= 1 for r in retries)
    types = list(JobEvent.objects.filter(job=job).values_list("type", flat=True))
    assert types.count("job_started") == 3
    assert types.count("job_completed") == 1 and types[-1] == "job_completed"
    assert "error" not in types


def test_it_gives_up_after_the_last_attempt(alice, page_server, settings):
    settings.LIBRARIAN_MAX_ATTEMPTS = 2
    url = page_server.add("/always-busy", handler=busy_then_ok(99))
    job = services.job_submit(url=url, submitted_by=alice)
    assert work_until_done(job) == [f"{job.pk}:retrying", f"{job.pk}:failed"]
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error_type) == (Status.FAILED, 2, "http_status")
    assert "429" in job.error_message
    assert page_server.hits("/always-busy") == 2


def test_it_does_not_retry_a_404(alice, page_server, settings):
    settings.LIBRARIAN_MAX_ATTEMPTS = 3
    url = page_server.add("/missing", "<html><body>no</body></html>", status=404)
    job = services.job_submit(url=url, submitted_by=alice)
    assert work_until_done(job) == [f"{job.pk}:failed"]
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error_type) == (Status.FAILED, 1, "http_status")
    assert job.not_before is None
    assert page_server.hits("/missing") == 1
