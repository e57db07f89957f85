"""The job lifecycle through the API: cancel, retry, batch submit, idempotency, who may act."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from ingestion import tasks
from ingestion.models import Job, JobEvent, Status
from library.models import LibraryItem
from tests.conftest import LONG_PARAGRAPHS, article_html, slow_article

pytestmark = pytest.mark.django_db(transaction=True)


def submit(client, url: str, **headers: str) -> dict:
    response = client.post("/api/v1/ingest", {"url": url}, format="json", **headers)
    assert response.status_code == 202, response.json()
    return response.json()


def event_types(job_id: str) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job_id).values_list("type", flat=True))


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_it_cancels_a_queued_job(alice_client, page_server):
    job = submit(alice_client, page_server.url("/queued"))
    response = alice_client.post(f"/api/v1/ingest/{job['job_id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["completed_at"]
    assert event_types(job["job_id"]) == ["job_cancelled"]
    # The task enqueued for it finds nothing to do.
    assert tasks.run_next_job() is None


def test_it_cancels_a_job_while_a_worker_fetches_it(alice_client, page_server):
    url = page_server.add("/slow", handler=slow_article(seconds=3))
    job = submit(alice_client, url)
    outcome: list[str | None] = []

    def work() -> None:
        try:
            outcome.append(tasks.run_next_job())
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert wait_for(lambda: "stage_started" in event_types(job["job_id"]))
        assert page_server.hits("/slow") == 1 or wait_for(lambda: page_server.hits("/slow") == 1)
        response = alice_client.post(f"/api/v1/ingest/{job['job_id']}/cancel")
        assert response.status_code == 200
    finally:
        worker.join(30)
    assert outcome == [f"{job['job_id']}:lost"]
    types = event_types(job["job_id"])
    assert types[-1] == "job_cancelled"
    assert types.count("job_cancelled") == 1
    assert "job_completed" not in types and "error" not in types
    body = alice_client.get(f"/api/v1/ingest/{job['job_id']}").json()
    assert body["status"] == "cancelled"
    assert body["result"] is None
    assert not LibraryItem.objects.exists()
    assert Job.objects.get(pk=job["job_id"]).lease_owner == ""


def test_it_refuses_to_cancel_a_finished_job(alice_client, article_page):
    job = submit(alice_client, article_page)
    tasks.run_next_job()
    response = alice_client.post(f"/api/v1/ingest/{job['job_id']}/cancel")
    assert response.status_code == 409
    assert response.json()["field"] == "status"
    assert "completed" in response.json()["error"]
    assert alice_client.get(f"/api/v1/ingest/{job['job_id']}").json()["status"] == "completed"


def test_it_retries_a_failed_job_until_it_completes(alice_client, page_server):
    url = page_server.add("/flaky", "<html><body>gone</body></html>", status=404)
    job = submit(alice_client, url)
    tasks.run_next_job()
    assert alice_client.get(f"/api/v1/ingest/{job['job_id']}").json()["status"] == "failed"
    page_server.add("/flaky", article_html("Back again", LONG_PARAGRAPHS))
    response = alice_client.post(f"/api/v1/ingest/{job['job_id']}/retry")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["progress"]["error"] is None
    assert tasks.run_next_job() == f"{job['job_id']}:completed"
    done = alice_client.get(f"/api/v1/ingest/{job['job_id']}").json()
    assert done["status"] == "completed"
    assert done["result"]["title"] == "Back again"
    # One log across both runs: the failure, then the second run to completion.
    types = event_types(job["job_id"])
    assert types.index("error") < types.index("job_completed") == len(types) - 1


def test_it_retries_a_cancelled_job(alice_client, article_page):
    job = submit(alice_client, article_page)
    alice_client.post(f"/api/v1/ingest/{job['job_id']}/cancel")
    assert alice_client.post(f"/api/v1/ingest/{job['job_id']}/retry").status_code == 202
    assert tasks.run_next_job() == f"{job['job_id']}:completed"


def test_it_refuses_to_retry_what_is_not_failed_or_cancelled(alice_client, page_server):
    job = submit(alice_client, page_server.url("/waiting"))
    response = alice_client.post(f"/api/v1/ingest/{job['job_id']}/retry")
    assert response.status_code == 409
    assert response.json()["field"] == "status"


def test_it_refuses_a_retry_while_another_job_has_the_url(alice_client, bob_client, page_server):
    url = page_server.add("/twice", "<html><body>gone</body></html>", status=404)
    first = submit(alice_client, url)
    tasks.run_next_job()
    second = submit(bob_client, url)
    response = alice_client.post(f"/api/v1/ingest/{first['job_id']}/retry")
    assert response.status_code == 409
    assert response.json()["job_id"] == second["job_id"]
    assert response.json()["field"] == "url"
    assert Job.objects.get(pk=first["job_id"]).status == Status.FAILED


def test_it_lets_only_the_submitter_and_staff_act_on_a_job(
    alice_client, bob_client, staff_client, page_server
):
    job = submit(alice_client, page_server.url("/mine"))
    for action in ("cancel", "retry"):
        assert bob_client.post(f"/api/v1/ingest/{job['job_id']}/{action}").status_code == 404
    assert Job.objects.get(pk=job["job_id"]).status == Status.QUEUED
    assert staff_client.post(f"/api/v1/ingest/{job['job_id']}/cancel").status_code == 200
    assert bob_client.post("/api/v1/ingest/not-a-uuid/cancel").status_code == 404


def test_it_answers_each_url_of_a_batch(alice_client, article_page, page_server):
    done = submit(alice_client, article_page)
    tasks.run_next_job()
    busy = submit(alice_client, page_server.url("/busy"))
    fresh = page_server.url("/fresh")
    urls = [fresh, page_server.url("/busy"), "not a url", article_page, fresh + "#again"]
    response = alice_client.post("/api/v1/ingest/batch", {"urls": urls}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == [
        "accepted",
        "duplicate",
        "invalid",
        "in_library",
        "duplicate",
    ]
    assert [r["index"] for r in results] == list(range(5))
    assert results[1]["job_id"] == busy["job_id"]
    assert results[2]["field"] == "url"
    assert results[3]["status"] == "completed" and results[3]["job_id"] != done["job_id"]
    assert results[4]["job_id"] == results[0]["job_id"]
    assert response.json()["counts"] == {
        "accepted": 1,
        "duplicate": 2,
        "invalid": 1,
        "in_library": 1,
    }
    assert Job.objects.filter(pk=results[0]["job_id"], submitted_by__username="alice").exists()


def test_it_refuses_a_batch_over_100_urls(alice_client, page_server):
    urls = [page_server.url(f"/b{i}") for i in range(101)]
    response = alice_client.post("/api/v1/ingest/batch", {"urls": urls}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "urls"
    assert not Job.objects.exists()
    exactly = alice_client.post("/api/v1/ingest/batch", {"urls": urls[:100]}, format="json")
    assert exactly.json()["counts"] == {"accepted": 100}


def test_it_scopes_idempotency_keys_to_their_user(alice_client, bob_client, page_server):
    first = submit(alice_client, page_server.url("/k"), HTTP_IDEMPOTENCY_KEY="order-7")
    # Repeating the key returns the same job even if the retry garbled the body.
    again = submit(alice_client, page_server.url("/other"), HTTP_IDEMPOTENCY_KEY="order-7")
    assert again["job_id"] == first["job_id"]
    theirs = submit(bob_client, page_server.url("/bob"), HTTP_IDEMPOTENCY_KEY="order-7")
    assert theirs["job_id"] != first["job_id"]
    assert Job.objects.count() == 2
