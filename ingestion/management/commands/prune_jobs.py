"""manage.py prune_jobs --older-than DAYS: delete finished jobs and their event logs.

Only terminal jobs (completed, failed, cancelled) go; queued and processing jobs
are the queue of record and are never touched. Library items are kept: a job
is the history of how an item arrived, not the item.
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from tqdm import tqdm

from ingestion.models import TERMINAL_STATUSES, Job, JobEvent

BATCH = 500


def prunable_jobs(older_than_days: float) -> QuerySet[Job]:
    cutoff = timezone.now() - timedelta(days=older_than_days)
    # A terminal job without completed_at (an old row) ages from its creation.
    return (
        Job.objects.filter(status__in=TERMINAL_STATUSES)
        .annotate(finished=Coalesce("completed_at", "created_at"))
        .filter(Q(finished__lt=cutoff))
    )


def prune_batch(ids: list[Any]) -> tuple[int, int]:
    """Delete these jobs and their events, skipping any retried since they were listed."""
    with transaction.atomic():
        # Locked and re-checked: a job retried meanwhile is queued again and keeps its log.
        still_terminal = list(
            Job.objects.select_for_update()
            .filter(pk__in=ids, status__in=TERMINAL_STATUSES)
            .values_list("pk", flat=True)
        )
        # Events in their own statement: one DELETE, not a cascade collected in memory.
        events = JobEvent.objects.filter(job_id__in=still_terminal).delete()[0]
        jobs = Job.objects.filter(pk__in=still_terminal).delete()[1].get("ingestion.Job", 0)
    return jobs, events


class Command(BaseCommand):
    help = (
        "Delete completed, failed and cancelled jobs (and their events) that finished more "
        "than DAYS days ago. Active jobs are never touched."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            required=True,
            metavar="DAYS",
            help="prune jobs that finished more than DAYS days ago",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go, delete nothing"
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        days: float = opts["older_than"]
        if days < 0:
            raise CommandError("--older-than must be 0 or more days")
        ids = list(prunable_jobs(days).order_by("created_at").values_list("pk", flat=True))
        if opts["dry_run"]:
            count = sum(
                JobEvent.objects.filter(job_id__in=ids[i : i + BATCH]).count()
                for i in range(0, len(ids), BATCH)
            )
            self.stdout.write(f"would delete {len(ids)} job(s) and {count} event(s) (dry run)")
            return
        jobs_deleted = events_deleted = 0
        with tqdm(total=len(ids), desc="pruning", unit="job", disable=opts["no_progress"]) as bar:
            for start in range(0, len(ids), BATCH):
                jobs, events = prune_batch(ids[start : start + BATCH])
                jobs_deleted += jobs
                events_deleted += events
                bar.update(len(ids[start : start + BATCH]))
        self.stdout.write(f"deleted {jobs_deleted} job(s) and {events_deleted} event(s)")
