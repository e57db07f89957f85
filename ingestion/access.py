"""The one access-checked lookup for jobs: its submitter and staff may see it."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from ingestion.models import Job


def jobs_visible_to(user: Any) -> QuerySet[Job]:
    if not user or not user.is_authenticated:
        return Job.objects.none()
    if user.is_staff:
        return Job.objects.all()
    return Job.objects.filter(submitted_by_id=user.pk)


def job_for_user(user: Any, job_id: uuid.UUID | str) -> Job:
    """The job, if `user` may see it; otherwise 404 (so ids do not leak)."""
    try:
        key = uuid.UUID(str(job_id))
    except ValueError as exc:
        raise Http404("no such job") from exc
    job = jobs_visible_to(user).filter(pk=key).first()
    if job is None:
        raise Http404("no such job")
    return job
