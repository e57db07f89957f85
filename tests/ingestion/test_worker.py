"""Real django-q2 clusters run real jobs; a killed worker's job is re-claimed once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingestion import services
from ingestion.models import Job, JobEvent, Status
from tests.conftest import LONG_PARAGRAPHS, article_html, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def start_cluster(settings, tmp_path: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = subprocess_env(
        settings,
        LIBRARIAN_DATA_DIR=str(tmp_path),
        LIBRARIAN_WORKERS="1",
        **extra,
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "cluster.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_it_runs_jobs_through_a_real_cluster(alice, page_server, settings, tmp_path):
    urls = [
        page_server.add(f"/q{i}", article_html(f"Cluster article {i}", LONG_PARAGRAPHS))
        for i in range(3)
    ]
    jobs = [services.job_submit(url=u, submitted_by=alice) for u in urls]
    cluster = start_cluster(settings, tmp_path)
    try:
        done = wait_for(
            lambda: Job.objects.filter(status=Status.COMPLETED).count() == len(jobs), 90
        )
        log = (tmp_path / "cluster.log").read_text(errors="replace")[-3000:]
        assert done, f"jobs: {list(Job.objects.values_list('status', 'error_message'))}\n{log}"
    finally:
        stop(cluster)
    for job in jobs:
        types = list(JobEvent.objects.filter(job=job).values_list("type", flat=True))
        assert types[0] == "job_started" and types[-1] == "job_completed"


def test_it_recovers_a_job_whose_worker_was_killed(alice, page_server, settings, tmp_path):
    from tests.conftest import slow_article

    url = page_server.add("/slow", handler=slow_article(seconds=6))
    job = services.job_submit(url=url, submitted_by=alice)
    cluster = start_cluster(settings, tmp_path, LIBRARIAN_LEASE_S="3")
    try:
        assert wait_for(
            lambda: Job.objects.filter(pk=job.pk, status=Status.PROCESSING).exists(), 60
        )
        # Kill every process of the cluster at once, mid-fetch, with no chance to clean up.
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()
        time.sleep(3.5)
        counts = services.sweep()
        assert counts["requeued"] == 1
        page_server.add("/slow", article_html("Slow but sure", LONG_PARAGRAPHS))
        cluster = start_cluster(settings, tmp_path, LIBRARIAN_LEASE_S="3")
        assert wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, 90)
    finally:
        stop(cluster)
    job.refresh_from_db()
    assert job.attempts == 2
    types = list(JobEvent.objects.filter(job=job).values_list("type", flat=True))
    assert types.count("job_completed") == 1
    seqs = list(JobEvent.objects.filter(job=job).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
