"""The pipeline's events for real jobs: order, honest percentages, typed failures."""

from __future__ import annotations

import pytest

from ingestion import services, tasks
from ingestion.models import Job, JobEvent, Status
from library.models import LibraryItem
from tests.conftest import LONG_PARAGRAPHS, article_html

pytestmark = pytest.mark.django_db(transaction=True)


def run(url: str, user, **options) -> Job:
    job = services.job_submit(url=url, submitted_by=user, options=options)
    tasks.run_next_job()
    job.refresh_from_db()
    return job


def events(job: Job) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job=job).order_by("seq"))


def test_it_emits_every_stage_in_order(alice, article_page):
    job = run(article_page, alice)
    assert job.status == Status.COMPLETED
    log = events(job)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    milestones = [(e.type, e.stage) for e in log if e.type not in ("stage_progress",)]
    assert milestones == [
        ("job_started", ""),
        ("stage_started", "extract"),
        ("stage_completed", "extract"),
        ("stage_started", "transform"),
        ("stage_completed", "transform"),
        ("stage_started", "load"),
        ("stage_completed", "load"),
        ("job_completed", ""),
    ]
    for event in log:
        assert event.data["job_id"] == str(job.pk)
        assert event.data["timestamp"].endswith("Z")
        if event.type == "stage_completed":
            assert event.data["duration_ms"] >= 0
    done = log[-1].data
    assert done["duration_ms"] >= sum(
        e.data["duration_ms"] for e in log if e.type == "stage_completed"
    )
    assert set(done["result"]) >= {"file_path", "title", "tier", "quality_score", "item_id"}


def test_it_reports_honest_monotonic_progress(alice, article_page):
    job = run(article_page, alice)
    overall = [e.data["job_percent_complete"] for e in events(job) if e.type == "stage_progress"]
    assert overall == sorted(overall)
    assert overall[0] < 40 and overall[-1] == 100
    stage_percent = [
        (e.stage, e.data["percent"]) for e in events(job) if e.type == "stage_progress"
    ]
    for stage in ("extract", "transform", "load"):
        values = [p for s, p in stage_percent if s == stage]
        assert values == sorted(values) and values[-1] == 100


def test_it_fails_an_empty_page_as_extract_empty(alice, page_server):
    url = page_server.add("/empty", "<html><head><title>x</title></head><body></body></html>")
    job = run(url, alice)
    assert (job.status, job.error_type, job.error_stage) == (
        Status.FAILED,
        "extract_empty",
        "extract",
    )
    last = events(job)[-1]
    assert last.type == "error" and last.data["reason"] == "extract_empty"
    assert last.data["error"]


def test_it_screens_out_a_bot_check_page(alice, page_server):
    url = page_server.add(
        "/check",
        "<html><head><title>Just a moment...</title></head><body><main><h1>Verify you are"
        " human</h1><p>Please complete the security check to access this site. Checking if"
        " the site connection is secure. Are you a robot? Enable JavaScript and cookies to"
        " continue.</p></main></body></html>",
    )
    job = run(url, alice)
    assert job.status == Status.FAILED
    assert job.error_stage in ("extract", "transform")
    assert job.error_type in ("captcha", "extract_empty", "too_short")
    assert not LibraryItem.objects.exists()


def test_it_refuses_a_non_html_response(alice, page_server):
    url = page_server.add("/file.pdf", b"%PDF-1.4", headers={"Content-Type": "application/pdf"})
    job = run(url, alice)
    assert (job.error_type, job.attempts) == ("not_html", 1)


def test_it_writes_the_item_and_its_chunks(alice, page_server):
    url = page_server.add("/long", article_html("A long read", LONG_PARAGRAPHS * 3))
    job = run(url, alice)
    item = LibraryItem.objects.get()
    assert job.item_id == item.pk
    assert item.chunks.count() >= 2
    assert item.word_count > 400
    assert item.analyzer == "local"
    assert item.embedder


def test_it_fails_as_storage_failed_when_the_file_cannot_be_written(
    alice, article_page, settings, tmp_path
):
    settings.LIBRARIAN_MAX_ATTEMPTS = 1
    # A file where the library folder should be: the storage really cannot write.
    (tmp_path / "files").mkdir(exist_ok=True)
    (tmp_path / "files" / "library").write_text("not a folder")
    job = run(article_page, alice)
    assert (job.status, job.error_type, job.error_stage) == (
        Status.FAILED,
        "storage_failed",
        "load",
    )
    assert not LibraryItem.objects.exists()
