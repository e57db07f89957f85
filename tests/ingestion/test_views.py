"""The ingest and jobs pages, and the job card, through Django's test client (no JavaScript)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from ingestion import services
from ingestion.events import emit_event
from ingestion.models import Job, Status
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_web(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_web(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def staff_web(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def submit(user, path: str = "a") -> Job:
    return services.job_submit(
        url=f"https://example.com/{path}-{uuid.uuid4().hex[:6]}", submitted_by=user
    )


def run_events(job: Job) -> None:
    """A job part-way through transform, as a worker leaves it."""
    emit_event(job.pk, "job_started")
    emit_event(job.pk, "stage_started", stage="extract", message="Fetching content from URL")
    emit_event(job.pk, "stage_completed", stage="extract", duration_ms=1500)
    emit_event(job.pk, "stage_started", stage="transform", message="Analysing content")
    Job.objects.filter(pk=job.pk).update(
        status=Status.PROCESSING,
        current_stage="transform",
        stages_completed=["extract"],
        percent=55,
    )


@pytest.mark.parametrize(
    "path", ["/ingest/", "/jobs/", f"/jobs/{uuid.uuid4()}/", f"/jobs/{uuid.uuid4()}/card"]
)
def test_it_sends_visitors_to_log_in(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/login/?next={path}")


def test_it_shows_the_ingest_form(alice_web):
    response = alice_web.get("/ingest/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="url"' in html and 'name="urls"' in html and 'name="priority"' in html
    assert 'name="force_refresh"' in html and 'name="skip_screening"' in html
    assert 'data-user-stream="/api/v1/stream?last_event_id=' in html


def test_it_submits_one_url_and_redirects(alice_web, alice):
    response = alice_web.post("/ingest/", {"url": "https://example.com/one", "priority": "high"})
    assert response.status_code == 302
    assert response["Location"] == "/ingest/"
    job = Job.objects.get(submitted_by=alice)
    assert job.priority_label == "high"
    page = alice_web.get("/ingest/").content.decode()
    assert f'id="job-{job.pk}"' in page
    assert "Queued 1 URL." in page


def test_it_submits_many_urls_with_options(alice_web, alice):
    lines = "https://example.com/a\n\n  https://example.com/b  \nhttps://example.com/a\n"
    response = alice_web.post(
        "/ingest/",
        {"urls": lines, "priority": "low", "force_refresh": "on", "skip_screening": "on"},
    )
    assert response.status_code == 302
    jobs = Job.objects.filter(submitted_by=alice)
    assert sorted(j.canonical_url for j in jobs) == [
        "https://example.com/a",
        "https://example.com/b",
    ]
    assert all(j.options == {"force_refresh": True, "skip_screening": True} for j in jobs)
    assert all(j.priority_label == "low" for j in jobs)


def test_it_shows_each_failed_url_inline_and_keeps_only_those(alice_web, bob):
    busy = submit(bob, "busy")
    item = make_item("Known article")
    lines = "\n".join(["not a url", busy.url, item.url, "https://example.com/fresh"])
    response = alice_web.post("/ingest/", {"urls": lines, "priority": "normal"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 URLs could not be submitted" in html
    assert "url-error--invalid" in html and "url-error--duplicate" in html
    assert "Queued 1 URL." in html
    assert "1 URL was already in the library." in html
    textarea = html.split('name="urls"', 1)[1].split("</textarea>", 1)[0]
    assert "not a url" in textarea and busy.url in textarea
    assert "fresh" not in textarea


def test_it_rejects_an_empty_submission(alice_web):
    response = alice_web.post("/ingest/", {"url": "", "urls": "  \n", "priority": "normal"})
    assert response.status_code == 200
    assert "Enter a URL, or paste some URLs" in response.content.decode()
    assert not Job.objects.exists()


def test_its_forms_are_csrf_protected(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/ingest/", {"url": "https://example.com/x"}).status_code == 403
    job = submit(alice)
    assert client.post(f"/jobs/{job.pk}/cancel").status_code == 403
    page = client.get("/ingest/").content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/ingest/",
        {"url": "https://example.com/y", "priority": "normal", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302


def test_the_card_shows_stages_messages_and_durations(alice_web, alice):
    job = submit(alice)
    run_events(job)
    html = alice_web.get(f"/jobs/{job.pk}/card").content.decode()
    assert 'value="55"' in html and "55%" in html
    assert "stage--done" in html and "in 1.5 s" in html
    assert "stage--current" in html and "Analysing content" in html
    assert "Cancel" in html and "Retry" not in html


def test_the_card_links_to_the_item_when_completed(alice_web, alice):
    item = make_item("Finished piece", tier="tier-a", score=8.2)
    job = services.job_submit(url=item.url, submitted_by=alice)
    html = alice_web.get(f"/jobs/{job.pk}/card").content.decode()
    assert f'href="/items/{item.pk}/"' in html
    assert "Finished piece" in html and "Already in the library" in html


def test_the_card_shows_the_failure_with_its_stage_and_reason(alice_web, alice):
    job = submit(alice)
    Job.objects.filter(pk=job.pk).update(
        status=Status.FAILED,
        error_stage="extract",
        error_type="http_status",
        error_message="HTTP 404",
    )
    html = alice_web.get(f"/jobs/{job.pk}/card").content.decode()
    assert "stage--failed" in html
    assert "http_status" in html and "HTTP 404" in html and "during <strong>extract" in html
    assert "Retry" in html and ">Cancel<" not in html


def test_the_job_page_follows_a_live_job_and_resumes_after_its_last_event(alice_web, alice):
    job = submit(alice)
    run_events(job)
    job.refresh_from_db()
    html = alice_web.get(f"/jobs/{job.pk}/").content.decode()
    assert f'sse-connect="/api/v1/stream/{job.pk}?last_event_id={job.last_seq}"' in html
    assert "sse:stage_progress" in html
    assert "Refresh" in html  # without JavaScript, a link re-renders the current state


def test_a_finished_job_page_opens_no_stream(alice_web, alice):
    job = submit(alice)
    services.job_cancel(job=job)
    html = alice_web.get(f"/jobs/{job.pk}/").content.decode()
    assert "sse-connect" not in html and "Cancelled" in html


def test_others_jobs_are_404(bob_web, alice):
    job = submit(alice)
    for path in (f"/jobs/{job.pk}/", f"/jobs/{job.pk}/card"):
        assert bob_web.get(path).status_code == 404
    assert bob_web.post(f"/jobs/{job.pk}/cancel").status_code == 404
    assert bob_web.post(f"/jobs/{job.pk}/retry").status_code == 404
    assert bob_web.get("/jobs/not-a-uuid/").status_code == 404
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_the_jobs_page_lists_own_jobs_and_staff_sees_all(alice_web, staff_web, bob_web, alice, bob):
    mine, theirs = submit(alice, "mine"), submit(bob, "theirs")
    html = alice_web.get("/jobs/").content.decode()
    assert f'id="job-{mine.pk}"' in html and f'id="job-{theirs.pk}"' not in html
    html = staff_web.get("/jobs/").content.decode()
    assert f'id="job-{mine.pk}"' in html and f'id="job-{theirs.pk}"' in html
    assert "by alice" in html and "by bob" in html


def test_the_jobs_page_filters_by_status(alice_web, alice):
    queued, cancelled = submit(alice, "q"), submit(alice, "c")
    services.job_cancel(job=cancelled)
    html = alice_web.get("/jobs/?status=cancelled").content.decode()
    assert f'id="job-{cancelled.pk}"' in html and f'id="job-{queued.pk}"' not in html
    html = alice_web.get("/jobs/?status=active").content.decode()
    assert f'id="job-{queued.pk}"' in html and f'id="job-{cancelled.pk}"' not in html
    assert alice_web.get("/jobs/?status=nonsense").status_code == 200


def test_cancel_and_retry_without_javascript(alice_web, alice):
    job = submit(alice)
    response = alice_web.post(f"/jobs/{job.pk}/cancel", {"next": "/jobs/"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    response = alice_web.post(f"/jobs/{job.pk}/retry", {"next": "https://evil.example/"})
    assert response["Location"] == f"/jobs/{job.pk}/"  # an outside `next` is ignored
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    response = alice_web.post(f"/jobs/{job.pk}/retry", follow=True)
    assert "Could not retry" in response.content.decode()


def test_cancel_with_htmx_returns_the_card(alice_web, alice):
    job = submit(alice)
    response = alice_web.post(
        f"/jobs/{job.pk}/cancel",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/jobs/",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "badge--cancelled" in html and "Retry" in html
    again = alice_web.post(f"/jobs/{job.pk}/cancel", HTTP_HX_REQUEST="true")
    assert "Could not cancel" in again.content.decode()


def test_retry_with_htmx_on_the_job_page_reloads_it(alice_web, alice):
    job = submit(alice)
    services.job_cancel(job=job)
    response = alice_web.post(
        f"/jobs/{job.pk}/retry",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver/jobs/{job.pk}/",
    )
    assert response["HX-Refresh"] == "true"


def test_actions_need_post(alice_web, alice):
    job = submit(alice)
    assert alice_web.get(f"/jobs/{job.pk}/cancel").status_code == 405
    assert alice_web.get(f"/jobs/{job.pk}/retry").status_code == 405
