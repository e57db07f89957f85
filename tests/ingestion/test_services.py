"""Job state transitions, the claim, the sweep and concurrent submissions."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from ingestion import services, tasks
from ingestion.models import Job, JobEvent, Priority, Status

pytestmark = pytest.mark.django_db(transaction=True)


def submit(url: str, user=None, priority: str = "normal") -> Job:
    return services.job_submit(url=url, priority=priority, submitted_by=user)


def test_it_claims_high_priority_before_older_low(alice, page_server):
    low = submit(page_server.url("/low"), alice, "low")
    normal = submit(page_server.url("/normal"), alice)
    high = submit(page_server.url("/high"), alice, "high")
    order = [services.job_claim_next(worker=f"w{i}") for i in range(3)]
    assert [j.pk for j in order if j] == [high.pk, normal.pk, low.pk]
    assert services.job_claim_next(worker="w9") is None


def test_it_lets_only_one_worker_claim_a_job(alice, page_server):
    submit(page_server.url("/one"), alice)
    claims: list[Job | None] = []

    def claim(name: str) -> None:
        claims.append(services.job_claim_next(worker=name))
        connection.close()

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([c for c in claims if c is not None]) == 1
    job = Job.objects.get()
    assert job.status == Status.PROCESSING
    assert job.attempts == 1


def test_it_refuses_events_from_a_worker_that_lost_the_job(alice, page_server):
    submit(page_server.url("/lost"), alice)
    job = services.job_claim_next(worker="w1")
    assert job is not None
    services.job_cancel(job=job)
    with pytest.raises(services.JobLost):
        services.job_progress(job_id=job.pk, worker="w1", event_type="stage_progress")
    assert not services.job_renew_lease(job_id=job.pk, worker="w1")
    assert JobEvent.objects.filter(job=job).order_by("seq").reverse()[0].type == "job_cancelled"


def test_it_cancels_and_retries(alice, page_server):
    job = submit(page_server.url("/c"), alice)
    services.job_cancel(job=job)
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    with pytest.raises(services.TransitionError):
        services.job_cancel(job=Job.objects.get(pk=job.pk))
    retried = services.job_retry(job=Job.objects.get(pk=job.pk))
    assert retried.status == Status.QUEUED
    with pytest.raises(services.TransitionError):
        services.job_retry(job=retried)


def test_it_retries_transient_failures_with_backoff(alice, page_server, settings):
    settings.LIBRARIAN_MAX_ATTEMPTS = 2
    job = submit(page_server.url("/t"), alice)
    claimed = services.job_claim_next(worker="w1")
    failure = services.Failure("extract", "fetch_timeout", "timed out", transient=True)
    assert services.job_fail(job_id=job.pk, worker="w1", failure=failure) == "retrying"
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert job.not_before is not None and job.not_before > timezone.now()
    # Not claimable during the backoff.
    assert services.job_claim_next(worker="w2") is None
    Job.objects.filter(pk=job.pk).update(not_before=timezone.now())
    again = services.job_claim_next(worker="w2")
    assert again is not None and claimed is not None and again.pk == claimed.pk
    assert services.job_fail(job_id=job.pk, worker="w2", failure=failure) == "failed"
    job.refresh_from_db()
    assert (job.status, job.error_type, job.attempts) == (Status.FAILED, "fetch_timeout", 2)


def test_it_does_not_retry_permanent_failures(alice, page_server):
    job = submit(page_server.url("/p"), alice)
    services.job_claim_next(worker="w1")
    failure = services.Failure("extract", "not_html", "application/pdf is not a page")
    assert services.job_fail(job_id=job.pk, worker="w1", failure=failure) == "failed"
    assert JobEvent.objects.filter(job=job, type="error").get().data["reason"] == "not_html"


def test_it_honours_retry_after_as_a_floor():
    assert services.backoff_seconds(1, retry_after=120) >= 120
    delays = {round(services.backoff_seconds(3), 3) for _ in range(20)}
    assert len(delays) > 1
    assert all(4 <= d <= 8 for d in delays)


def test_it_requeues_a_job_whose_lease_expired(alice, page_server):
    job = submit(page_server.url("/dead"), alice)
    services.job_claim_next(worker="dead-worker")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.sweep()["requeued"] == 1
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert not job.lease_owner


def test_it_fails_a_job_that_kept_killing_workers(alice, page_server, settings):
    settings.LIBRARIAN_MAX_ATTEMPTS = 1
    job = submit(page_server.url("/poison"), alice)
    services.job_claim_next(worker="dead-worker")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.sweep()["failed"] == 1
    job.refresh_from_db()
    assert (job.status, job.error_type) == (Status.FAILED, "worker_lost")


def test_it_nudges_queued_jobs_no_task_carries(alice, page_server):
    job = submit(page_server.url("/idle"), alice)
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(hours=1))
    assert services.sweep()["nudged"] == 1
    job.refresh_from_db()
    assert job.enqueued_at is not None
    assert job.enqueued_at > timezone.now() - timedelta(minutes=1)
    assert services.sweep()["nudged"] == 0


def test_it_gives_one_202_and_one_409_for_simultaneous_identical_urls(alice, page_server):
    url = page_server.url("/race")
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def go() -> None:
        barrier.wait()
        try:
            submit(url, alice)
            outcomes.append("accepted")
        except services.DuplicateJob:
            outcomes.append("duplicate")
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted", "duplicate"]
    assert Job.objects.filter(canonical_url=url).count() == 1


def test_it_processes_twenty_concurrent_submissions_once_each(alice, page_server):
    from tests.conftest import LONG_PARAGRAPHS, article_html

    urls = [
        page_server.add(
            f"/a{i}",
            article_html(
                f"Article number {i}", LONG_PARAGRAPHS[i % 5 :] + LONG_PARAGRAPHS[: i % 5]
            ),
        )
        for i in range(20)
    ]
    errors: list[Exception] = []

    def go(url: str) -> None:
        try:
            submit(url, alice)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    outcomes: list[str | None] = []

    def work() -> None:
        while (outcome := tasks.run_next_job()) is not None:
            outcomes.append(outcome)
        connection.close()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(outcomes) == 20
    assert Job.objects.filter(status=Status.COMPLETED).count() == 20
    assert all(j.attempts == 1 for j in Job.objects.all())
    for job in Job.objects.all():
        assert JobEvent.objects.filter(job=job, type="job_started").count() == 1


def test_it_keeps_priority_labels():
    assert Priority.from_label("high") == Priority.HIGH
    assert Priority(Priority.LOW).label == "low"
