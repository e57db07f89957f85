"""The pipeline: a thin loop over the three stages, with a lease kept alive.

Each stage is a module in `ingestion.stages` with one `run(ctx)` function. A stage
reports progress through `ctx.progress` (which also checks that the job is still
ours, so a cancel stops the job between steps) and fails by raising StageFailure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from ingestion import services
from ingestion.models import Job
from librarian.db_unavailable import UNAVAILABLE

log = logging.getLogger(__name__)

# Each stage owns a slice of the job's 0–100 % so the bar only moves forward.
STAGE_SPAN: dict[str, tuple[int, int]] = {
    "extract": (0, 40),
    "transform": (40, 80),
    "load": (80, 100),
}
STAGE_MESSAGES = {
    "extract": "Fetching content from URL",
    "transform": "Analysing content",
    "load": "Storing in library",
}


class StageFailure(Exception):
    def __init__(
        self,
        reason: str,
        message: str,
        *,
        transient: bool = False,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient
        self.retry_after = retry_after
        self.details = details or {}


@dataclass
class JobContext:
    job: Job
    worker: str
    stage: str = ""
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        return self.job.options or {}

    def emit(self, event_type: Any, *, job_percent: int | None = None, **fields: Any) -> None:
        services.job_progress(
            job_id=self.job.pk,
            worker=self.worker,
            event_type=event_type,
            job_percent=job_percent,
            **fields,
        )

    def progress(self, percent: int, message: str, **fields: Any) -> None:
        """Report `percent` (0–100) of the current stage."""
        low, high = STAGE_SPAN[self.stage]
        percent = max(0, min(100, int(percent)))
        overall = low + (high - low) * percent // 100
        self.emit(
            "stage_progress",
            stage=self.stage,
            percent=percent,
            message=message,
            job_percent=overall,
            job_percent_complete=overall,
            **fields,
        )


class LeaseKeeper:
    """Renews the job's lease in the background while the pipeline works."""

    def __init__(self, job_id: Any, worker: str) -> None:
        self.job_id = job_id
        self.worker = worker
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lease-keeper")

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = max(0.5, settings.LIBRARIAN_LEASE_S / 3)
        try:
            while not self._stop.wait(interval):
                try:
                    if not services.job_renew_lease(job_id=self.job_id, worker=self.worker):
                        self.lost = True
                        return
                except Exception:  # noqa: BLE001
                    # A database blip: try again next interval; the lease has slack.
                    log.warning("lease renewal failed", extra={"job_id": self.job_id})
                    close_old_connections()
        finally:
            connection.close()


def stage_runners() -> list[tuple[str, Callable[[JobContext], None]]]:
    from ingestion.stages import extract, load, transform

    return [("extract", extract.run), ("transform", transform.run), ("load", load.run)]


def run_pipeline(job: Job, worker: str) -> str:
    """Run every stage of a claimed job; returns the job's outcome."""
    ctx = JobContext(job=job, worker=worker)
    started = time.monotonic()
    try:
        with LeaseKeeper(job.pk, worker):
            ctx.emit("job_started", attempt=job.attempts)
            for name, run in stage_runners():
                ctx.stage = name
                stage_started = time.monotonic()
                low = STAGE_SPAN[name][0]
                ctx.emit("stage_started", stage=name, message=STAGE_MESSAGES[name], job_percent=low)
                run(ctx)
                ctx.emit(
                    "stage_completed",
                    stage=name,
                    duration_ms=int((time.monotonic() - stage_started) * 1000),
                    job_percent=STAGE_SPAN[name][1],
                    stage_done=name,
                )
            duration = int((time.monotonic() - started) * 1000)
            done = services.job_complete(
                job_id=job.pk,
                worker=worker,
                item=ctx.state["item"],
                result=ctx.state["result"],
                duration_ms=duration,
            )
            return "completed" if done else "lost"
    except services.JobLost:
        log.info("job no longer ours (cancelled or lease lost)", extra={"job_id": job.pk})
        return "lost"
    except StageFailure as exc:
        failure = services.Failure(
            stage=ctx.stage,
            reason=exc.reason,
            message=exc.message,
            transient=exc.transient,
            retry_after=exc.retry_after,
            details=exc.details,
        )
        return services.job_fail(job_id=job.pk, worker=worker, failure=failure)
    except Exception as exc:
        log.exception("pipeline crashed", extra={"job_id": job.pk, "stage": ctx.stage})
        # The database or Redis went away mid-job: not the page's fault, so retry it.
        unavailable = isinstance(exc, UNAVAILABLE)
        failure = services.Failure(
            stage=ctx.stage or "extract",
            reason="service_unavailable" if unavailable else "internal_error",
            message=f"{type(exc).__name__}: {exc}"[:500],
            transient=unavailable,
        )
        return services.job_fail(job_id=job.pk, worker=worker, failure=failure)
