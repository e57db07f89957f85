"""prune_jobs deletes old finished jobs with their events, and nothing else."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone

from ingestion.events import emit_event
from ingestion.models import Job, JobEvent, Status
from library.models import LibraryItem
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db


def job(status: str, *, age_days: float, events: int = 2, finished: bool = True) -> Job:
    url = f"https://example.com/{uuid.uuid4().hex[:8]}"
    when = timezone.now() - timedelta(days=age_days)
    created = Job.objects.create(
        url=url,
        canonical_url=url,
        status=status,
        created_at=when,
        completed_at=when if finished and status != Status.QUEUED else None,
    )
    for _ in range(events):
        emit_event(created.pk, "stage_progress", stage="extract", message="working")
    return created


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_jobs", *args, "--no-progress", stdout=out)
    return out.getvalue()


def test_it_explains_itself_with_help():
    command = load_command_class("ingestion", "prune_jobs")
    text = command.create_parser("manage.py", "prune_jobs").format_help()
    assert "--older-than" in text and "--dry-run" in text


def test_it_deletes_old_finished_jobs_and_their_events():
    old = [job(s, age_days=40) for s in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)]
    recent = job(Status.COMPLETED, age_days=2)
    assert prune("--older-than", "30") == "deleted 3 job(s) and 6 event(s)\n"
    assert not Job.objects.filter(pk__in=[j.pk for j in old]).exists()
    assert list(Job.objects.values_list("pk", flat=True)) == [recent.pk]
    assert JobEvent.objects.filter(job=recent).count() == 2


def test_it_never_touches_active_jobs():
    queued = job(Status.QUEUED, age_days=90)
    processing = job(Status.PROCESSING, age_days=90, finished=False)
    assert prune("--older-than", "1").startswith("deleted 0 job(s)")
    assert Job.objects.filter(pk__in=[queued.pk, processing.pk]).count() == 2


def test_it_ages_a_finished_job_without_completion_time_from_its_creation():
    job(Status.FAILED, age_days=10, finished=False)
    assert prune("--older-than", "5").startswith("deleted 1 job(s)")


def test_it_keeps_the_library_items_of_pruned_jobs():
    item = make_item("Kept article")
    old = job(Status.COMPLETED, age_days=60)
    Job.objects.filter(pk=old.pk).update(item=item)
    prune("--older-than", "30")
    assert LibraryItem.objects.filter(pk=item.pk).exists()


def test_it_only_counts_on_a_dry_run():
    job(Status.COMPLETED, age_days=40, events=3)
    assert prune("--older-than", "30", "--dry-run") == (
        "would delete 1 job(s) and 3 event(s) (dry run)\n"
    )
    assert Job.objects.count() == 1 and JobEvent.objects.count() == 3


def test_it_refuses_a_negative_age():
    with pytest.raises(CommandError, match="0 or more"):
        prune("--older-than", "-1")
