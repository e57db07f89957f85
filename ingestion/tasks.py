"""Queue tasks: plain functions that take ids. The jobs table is the queue of record."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from ingestion import services
from ingestion.pipeline import run_pipeline

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_next_job(hint: str | None = None) -> str | None:
    """Claim the best queued job (not necessarily `hint`) and run it.

    Tasks are interchangeable: each submitted job adds one, and whichever task
    runs first takes the most urgent job, so `high` never waits behind `low`.
    """
    worker = worker_name()
    job = services.job_claim_next(worker=worker)
    if job is None:
        return None
    outcome = run_pipeline(job, worker)
    return f"{job.pk}:{outcome}"


def sweep() -> dict[str, int]:
    """The periodic schedule: re-queue dead workers' jobs, nudge idle queued ones."""
    return services.sweep()
