"""Every change of a job's state. Each one is a conditional update, so two
workers (or a worker and a user cancelling) can never both own one job."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ingestion.canonical import InvalidURL, check_submittable
from ingestion.events import emit_event
from ingestion.models import ACTIVE_STATUSES, Job, Priority, Status
from library import services as library_services

log = logging.getLogger(__name__)

OPTION_NAMES = ("force_refresh", "skip_screening")


class SubmitError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str = "", job: Job | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.job = job


class InvalidSubmission(SubmitError):
    status_code = 400


class DuplicateJob(SubmitError):
    status_code = 409


class Backpressure(SubmitError):
    status_code = 503
    retry_after = 30


class JobLost(Exception):
    """The worker no longer owns the job: it was cancelled or its lease expired."""


class TransitionError(Exception):
    """A user asked for a change the job's current state does not allow."""


@dataclass(frozen=True)
class Failure:
    stage: str
    reason: str
    message: str
    transient: bool = False
    retry_after: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _user_id(user: AbstractBaseUser | AnonymousUser | None) -> int | None:
    if user is None or not user.is_authenticated:
        return None
    return int(user.pk)


def normalise_options(options: dict[str, Any] | None) -> dict[str, bool]:
    options = options or {}
    if not isinstance(options, dict):
        raise InvalidSubmission("options must be an object", field="options")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise InvalidSubmission(f"unknown option(s): {', '.join(unknown)}", field="options")
    clean: dict[str, bool] = {}
    for name in OPTION_NAMES:
        value = options.get(name, False)
        if not isinstance(value, bool):
            raise InvalidSubmission(
                f"options.{name} must be true or false", field=f"options.{name}"
            )
        clean[name] = value
    return clean


def job_submit(
    *,
    url: str,
    priority: str = "normal",
    options: dict[str, Any] | None = None,
    submitted_by: AbstractBaseUser | AnonymousUser | None = None,
    idempotency_key: str = "",
    tags: Sequence[str] = (),
) -> Job:
    """Accept a URL: validate, dedupe, record the job and enqueue its task on commit.

    `tags` (e.g. an imported bookmark's folders) are added to the analyzer's.
    """
    owner_id = _user_id(submitted_by)
    if idempotency_key:
        previous = Job.objects.filter(submitted_by_id=owner_id, idempotency_key=idempotency_key)
        existing = previous.first()
        if existing is not None:
            return existing
    if priority not in ("high", "normal", "low"):
        raise InvalidSubmission("priority must be high, normal or low", field="priority")
    clean_options: dict[str, Any] = dict(normalise_options(options))
    if tags:
        clean_options["tags"] = [str(tag)[:100] for tag in tags][:50]
    try:
        canonical = check_submittable(url)
    except InvalidURL as exc:
        raise InvalidSubmission(str(exc), field="url") from exc

    if not clean_options["force_refresh"]:
        item = library_services.item_by_url(canonical)
        if item is not None:
            return _complete_from_library(
                url=url,
                canonical=canonical,
                priority=priority,
                options=clean_options,
                owner_id=owner_id,
                idempotency_key=idempotency_key,
                item=item,
            )

    backlog = Job.objects.filter(status=Status.QUEUED).count()
    if backlog >= settings.LIBRARIAN_MAX_BACKLOG:
        raise Backpressure(f"the queue holds {backlog} jobs; try again later", field="queue")

    try:
        with transaction.atomic():
            job = Job.objects.create(
                url=url,
                canonical_url=canonical,
                priority=Priority.from_label(priority),
                options=clean_options,
                submitted_by_id=owner_id,
                idempotency_key=idempotency_key,
                enqueued_at=timezone.now(),
            )
            transaction.on_commit(lambda: enqueue(job.pk))
    except IntegrityError as exc:
        active = Job.objects.filter(canonical_url=canonical, status__in=ACTIVE_STATUSES).first()
        if active is not None:
            raise DuplicateJob(
                f"{canonical} is already being processed by job {active.pk}",
                field="url",
                job=active,
            ) from exc
        if idempotency_key:
            same = Job.objects.filter(submitted_by_id=owner_id, idempotency_key=idempotency_key)
            if (existing := same.first()) is not None:
                return existing
        raise
    log.info("job accepted", extra={"job_id": job.pk, "url": canonical})
    return job


def _complete_from_library(
    *,
    url: str,
    canonical: str,
    priority: str,
    options: dict[str, Any],
    owner_id: int | None,
    idempotency_key: str,
    item: Any,
) -> Job:
    now = timezone.now()
    result = {**library_services.item_result(item), "from_library": True}
    with transaction.atomic():
        job = Job.objects.create(
            url=url,
            canonical_url=canonical,
            priority=Priority.from_label(priority),
            options=options,
            submitted_by_id=owner_id,
            idempotency_key=idempotency_key,
            status=Status.COMPLETED,
            started_at=now,
            completed_at=now,
            percent=100,
            item=item,
            result=result,
        )
        emit_event(job.pk, "job_started")
        emit_event(job.pk, "job_completed", duration_ms=0, result=result)
    return job


def enqueue(job_id: uuid.UUID) -> bool:
    """Hand one task to the broker. A lost task is harmless: the sweep nudges."""
    from django_q.tasks import async_task

    try:
        async_task("ingestion.tasks.run_next_job", str(job_id), task_name=f"job-{job_id}")
    except Exception:  # noqa: BLE001
        log.warning("enqueue failed; the sweep will retry", extra={"job_id": job_id}, exc_info=True)
        return False
    return True


def job_claim_next(*, worker: str) -> Job | None:
    """Claim the best queued job (priority, then age) for `worker`, or None."""
    for _ in range(10):
        now = timezone.now()
        candidate = (
            Job.objects.filter(status=Status.QUEUED)
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .order_by("priority", "created_at")
            .values_list("pk", flat=True)
            .first()
        )
        if candidate is None:
            return None
        # The status in the filter makes this a compare-and-set: only one
        # worker's update can match the queued row.
        claimed = Job.objects.filter(pk=candidate, status=Status.QUEUED).update(
            status=Status.PROCESSING,
            lease_owner=worker,
            lease_expires_at=now + timedelta(seconds=settings.LIBRARIAN_LEASE_S),
            started_at=Coalesce(F("started_at"), now),
            attempts=F("attempts") + 1,
            current_stage="",
            stages_completed=[],
            percent=0,
        )
        if claimed == 1:
            return Job.objects.get(pk=candidate)
    return None


def _owned(job_id: uuid.UUID, worker: str) -> Any:
    return Job.objects.filter(pk=job_id, status=Status.PROCESSING, lease_owner=worker)


def job_renew_lease(*, job_id: uuid.UUID, worker: str) -> bool:
    expires = timezone.now() + timedelta(seconds=settings.LIBRARIAN_LEASE_S)
    return bool(_owned(job_id, worker).update(lease_expires_at=expires) == 1)


def job_progress(
    *,
    job_id: uuid.UUID,
    worker: str,
    event_type: Any,
    stage: str = "",
    job_percent: int | None = None,
    stage_done: str = "",
    **fields: Any,
) -> None:
    """Record a worker's event, but only while it still owns the job."""
    with transaction.atomic():
        job = _owned(job_id, worker).select_for_update().first()
        if job is None:
            raise JobLost(str(job_id))
        changes: dict[str, Any] = {}
        if stage:
            changes["current_stage"] = stage
        if job_percent is not None:
            changes["percent"] = job_percent
        if stage_done:
            changes["stages_completed"] = [*job.stages_completed, stage_done]
        if changes:
            Job.objects.filter(pk=job_id).update(**changes)
        emit_event(job_id, event_type, stage=stage, **fields)


def job_complete(
    *, job_id: uuid.UUID, worker: str, item: Any, result: dict[str, Any], duration_ms: int
) -> bool:
    with transaction.atomic():
        done = _owned(job_id, worker).update(
            status=Status.COMPLETED,
            completed_at=timezone.now(),
            percent=100,
            item=item,
            result=result,
            lease_owner="",
            lease_expires_at=None,
        )
        if done != 1:
            return False
        emit_event(job_id, "job_completed", duration_ms=duration_ms, result=result)
    log.info("job completed", extra={"job_id": job_id})
    return True


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; a server's Retry-After is a floor."""
    base = min(300.0, 2.0 * (2 ** max(0, attempt - 1)))
    delay = base / 2 + random.uniform(0, base / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 3600.0))
    return delay


def job_fail(*, job_id: uuid.UUID, worker: str, failure: Failure) -> str:
    """Fail the job, or re-queue it with backoff when the failure is transient."""
    with transaction.atomic():
        job = _owned(job_id, worker).select_for_update().first()
        if job is None:
            return "lost"
        if failure.transient and job.attempts < settings.LIBRARIAN_MAX_ATTEMPTS:
            delay = backoff_seconds(job.attempts, failure.retry_after)
            _owned(job_id, worker).update(
                status=Status.QUEUED,
                not_before=timezone.now() + timedelta(seconds=delay),
                lease_owner="",
                lease_expires_at=None,
                enqueued_at=None,
            )
            emit_event(
                job_id,
                "stage_progress",
                stage=failure.stage,
                message=f"{failure.message}; retrying in {delay:.0f} s",
                retry={
                    "attempt": job.attempts,
                    "delay_s": round(delay, 1),
                    "reason": failure.reason,
                },
            )
            return "retrying"
        _owned(job_id, worker).update(
            status=Status.FAILED,
            completed_at=timezone.now(),
            error_type=failure.reason,
            error_message=failure.message,
            error_stage=failure.stage,
            lease_owner="",
            lease_expires_at=None,
        )
        emit_event(
            job_id,
            "error",
            stage=failure.stage,
            error=failure.message,
            reason=failure.reason,
            **failure.details,
        )
    log.info(
        "job failed",
        extra={"job_id": job_id, "stage": failure.stage, "reason": failure.reason},
    )
    return "failed"


def job_cancel(*, job: Job) -> Job:
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(
            status=Status.CANCELLED,
            completed_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
        )
        if changed != 1:
            raise TransitionError(f"a {job.status} job cannot be cancelled")
        emit_event(job.pk, "job_cancelled", stage=job.current_stage)
    job.refresh_from_db()
    return job


def job_retry(*, job: Job) -> Job:
    try:
        with transaction.atomic():
            changed = Job.objects.filter(
                pk=job.pk, status__in=(Status.FAILED, Status.CANCELLED)
            ).update(
                status=Status.QUEUED,
                error_type="",
                error_message="",
                error_stage="",
                attempts=0,
                not_before=None,
                completed_at=None,
                current_stage="",
                stages_completed=[],
                percent=0,
                enqueued_at=timezone.now(),
            )
            if changed != 1:
                raise TransitionError(f"a {job.status} job cannot be retried")
            transaction.on_commit(lambda: enqueue(job.pk))
    except IntegrityError as exc:
        active = Job.objects.filter(canonical_url=job.canonical_url, status__in=ACTIVE_STATUSES)
        raise DuplicateJob(
            "this URL is already being processed", field="url", job=active.first()
        ) from exc
    job.refresh_from_db()
    return job


def sweep() -> dict[str, int]:
    """Re-queue jobs whose worker died, and nudge queued jobs no task carries."""
    now = timezone.now()
    requeued = failed = nudged = 0
    expired = Job.objects.filter(status=Status.PROCESSING, lease_expires_at__lt=now)
    for job in expired.only("pk", "attempts", "lease_expires_at", "current_stage"):
        with transaction.atomic():
            lease = Job.objects.filter(
                pk=job.pk, status=Status.PROCESSING, lease_expires_at=job.lease_expires_at
            )
            if job.attempts >= settings.LIBRARIAN_MAX_ATTEMPTS:
                if lease.update(
                    status=Status.FAILED,
                    completed_at=now,
                    error_type="worker_lost",
                    error_message="the worker processing this job stopped responding",
                    error_stage=job.current_stage,
                    lease_owner="",
                    lease_expires_at=None,
                ):
                    emit_event(
                        job.pk,
                        "error",
                        stage=job.current_stage,
                        reason="worker_lost",
                        error="the worker processing this job stopped responding",
                    )
                    failed += 1
            elif lease.update(
                status=Status.QUEUED, lease_owner="", lease_expires_at=None, enqueued_at=None
            ):
                emit_event(
                    job.pk,
                    "stage_progress",
                    stage=job.current_stage,
                    message="the worker stopped responding; the job was re-queued",
                )
                requeued += 1
    stale = now - timedelta(seconds=settings.LIBRARIAN_NUDGE_AFTER_S)
    waiting = (
        Job.objects.filter(status=Status.QUEUED)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        .order_by("priority", "created_at")
        .values_list("pk", flat=True)[:500]
    )
    for job_id in list(waiting):
        if enqueue(job_id):
            Job.objects.filter(pk=job_id, status=Status.QUEUED).update(enqueued_at=now)
            nudged += 1
    return {"requeued": requeued, "failed": failed, "nudged": nudged}
