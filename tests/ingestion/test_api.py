"""POST /api/v1/ingest and GET /api/v1/ingest/{id}: every status code."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from ingestion import tasks
from ingestion.models import Job, JobEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_accepts_a_url_with_the_contract_shape(alice_client, article_page):
    response = alice_client.post(
        "/api/v1/ingest", {"url": article_page, "priority": "high"}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    assert set(body) >= {"job_id", "status", "url", "created_at", "stream_url"}
    assert body["status"] == "queued"
    assert body["url"] == article_page
    assert body["stream_url"] == f"/api/v1/stream/{body['job_id']}"
    assert body["created_at"].endswith("Z")
    assert Job.objects.get(pk=body["job_id"]).priority_label == "high"


def test_it_requires_authentication(article_page):
    response = APIClient().post("/api/v1/ingest", {"url": article_page}, format="json")
    assert response.status_code in (401, 403)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://example.com/file"}, "url"),
        ({}, "url"),
        ({"url": "https://example.com/a", "priority": "urgent"}, "priority"),
        ({"url": "https://example.com/a", "options": {"force_refresh": "yes"}}, "options"),
        ({"url": "https://example.com/a", "options": {"colour": True}}, "options"),
    ],
)
def test_it_answers_400_naming_the_field(alice_client, payload, field):
    response = alice_client.post("/api/v1/ingest", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["field"].startswith(field)
    assert body["error"]


def test_it_answers_409_naming_the_job_in_flight(alice_client, article_page):
    first = alice_client.post("/api/v1/ingest", {"url": article_page}, format="json").json()
    again = alice_client.post(
        "/api/v1/ingest", {"url": article_page + "?utm_source=feed"}, format="json"
    )
    assert again.status_code == 409
    assert again.json()["job_id"] == first["job_id"]
    assert again.json()["field"] == "url"


def test_it_completes_at_once_from_the_library(alice_client, article_page):
    first = alice_client.post("/api/v1/ingest", {"url": article_page}, format="json").json()
    assert tasks.run_next_job() == f"{first['job_id']}:completed"
    again = alice_client.post("/api/v1/ingest", {"url": article_page}, format="json")
    assert again.status_code == 202
    assert again.json()["status"] == "completed"
    status = alice_client.get(f"/api/v1/ingest/{again.json()['job_id']}").json()
    assert status["result"]["from_library"] is True
    refreshed = alice_client.post(
        "/api/v1/ingest",
        {"url": article_page, "options": {"force_refresh": True}},
        format="json",
    )
    assert refreshed.json()["status"] == "queued"


def test_it_reports_status_through_the_stages(alice_client, article_page):
    job_id = alice_client.post("/api/v1/ingest", {"url": article_page}, format="json").json()[
        "job_id"
    ]
    queued = alice_client.get(f"/api/v1/ingest/{job_id}").json()
    assert queued["status"] == "queued"
    assert queued["progress"] == {
        "current_stage": None,
        "stages_completed": [],
        "percent_complete": 0,
        "error": None,
    }
    tasks.run_next_job()
    done = alice_client.get(f"/api/v1/ingest/{job_id}").json()
    assert done["status"] == "completed"
    assert done["progress"]["stages_completed"] == ["extract", "transform", "load"]
    assert done["progress"]["percent_complete"] == 100
    assert done["result"]["title"] == "Bees and orchards"
    assert done["result"]["file_path"].startswith("library/tier-")
    assert done["started_at"] and done["completed_at"]


def test_it_hides_other_peoples_jobs(alice_client, bob_client, staff_client, article_page):
    job_id = alice_client.post("/api/v1/ingest", {"url": article_page}, format="json").json()[
        "job_id"
    ]
    assert bob_client.get(f"/api/v1/ingest/{job_id}").status_code == 404
    assert staff_client.get(f"/api/v1/ingest/{job_id}").status_code == 200
    assert alice_client.get(f"/api/v1/ingest/{uuid.uuid4()}").status_code == 404
    assert alice_client.get("/api/v1/ingest/not-a-uuid").status_code == 404


def test_it_reports_a_failure_with_stage_and_reason(alice_client, page_server):
    url = page_server.add("/gone", "<html><body>gone</body></html>", status=404)
    job_id = alice_client.post("/api/v1/ingest", {"url": url}, format="json").json()["job_id"]
    tasks.run_next_job()
    body = alice_client.get(f"/api/v1/ingest/{job_id}").json()
    assert body["status"] == "failed"
    assert body["progress"]["error"]["type"] == "http_status"
    assert body["progress"]["error"]["stage"] == "extract"
    assert "404" in body["progress"]["error"]["message"]
    error_event = JobEvent.objects.get(job_id=job_id, type="error")
    assert error_event.data["status_code"] == 404


def test_it_throttles_with_retry_after(alice_client, monkeypatch, page_server):
    from ingestion.api import IngestThrottle

    # The rate is read from the class when each request is throttled; monkeypatch
    # puts the configured one back after the test.
    monkeypatch.setattr(IngestThrottle, "THROTTLE_RATES", {"ingest": "2/min"})
    codes = [
        alice_client.post(
            "/api/v1/ingest", {"url": page_server.url(f"/p{i}")}, format="json"
        ).status_code
        for i in range(3)
    ]
    assert codes == [202, 202, 429]
    last = alice_client.post("/api/v1/ingest", {"url": page_server.url("/p9")}, format="json")
    assert int(last["Retry-After"]) > 0
    assert "retry_after" in last.json()


def test_it_answers_503_when_the_backlog_is_full(alice_client, settings, page_server):
    settings.LIBRARIAN_MAX_BACKLOG = 1
    assert (
        alice_client.post(
            "/api/v1/ingest", {"url": page_server.url("/a")}, format="json"
        ).status_code
        == 202
    )
    full = alice_client.post("/api/v1/ingest", {"url": page_server.url("/b")}, format="json")
    assert full.status_code == 503
    assert full["Retry-After"]
    assert full.json()["field"] == "queue"


def test_it_returns_the_same_job_for_a_repeated_idempotency_key(alice_client, page_server):
    url = page_server.url("/once")
    first = alice_client.post(
        "/api/v1/ingest", {"url": url}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    second = alice_client.post(
        "/api/v1/ingest", {"url": url}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    assert Job.objects.count() == 1
