"""Queue tasks: plain functions that take ids. The jobs table is the queue of record."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from django.conf import settings

from ingestion import services
from ingestion.pipeline import run_pipeline

log = logging.getLogger(__name__)
_niced = False


def lower_priority() -> None:
    """Run pipeline work below the web server's priority, once per worker process.

    On a small machine the embedder and the API share cores: the API's latency
    matters to people, a job's few extra milliseconds do not.
    """
    global _niced
    if _niced:
        return
    _niced = True
    try:
        os.nice(settings.LIBRARIAN_WORKER_NICE)
    except OSError:
        log.warning("could not lower the worker's priority")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_next_job(hint: str | None = None) -> str | None:
    """Claim the best queued job (not necessarily `hint`) and run it.

    Tasks are interchangeable: each submitted job adds one, and whichever task
    runs first takes the most urgent job, so `high` never waits behind `low`.
    """
    lower_priority()
    worker = worker_name()
    job = services.job_claim_next(worker=worker)
    if job is None:
        return None
    outcome = run_pipeline(job, worker)
    return f"{job.pk}:{outcome}"


def sweep() -> dict[str, int]:
    """The periodic schedule: re-queue dead workers' jobs, nudge idle queued ones."""
    return services.sweep()
