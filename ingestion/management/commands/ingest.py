"""manage.py ingest URL [URL ...]: submit through the same service as the API."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ingestion import services
from ingestion.models import Job, Status


class Command(BaseCommand):
    help = "Submit URLs for ingestion; with --wait, follow each job to its end."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("urls", nargs="+", metavar="URL")
        parser.add_argument("--priority", choices=["high", "normal", "low"], default="normal")
        parser.add_argument("--force-refresh", action="store_true")
        parser.add_argument("--skip-screening", action="store_true")
        parser.add_argument("--user", help="submit as this user (default: first superuser)")
        parser.add_argument(
            "--wait", action="store_true", help="follow the jobs with progress bars"
        )
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait at most")

    def handle(self, *args: Any, **opts: Any) -> None:
        user_model = get_user_model()
        if opts["user"]:
            user = user_model.objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"no user named {opts['user']!r}")
        else:
            user = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        jobs: list[Job] = []
        rejected = 0
        for url in opts["urls"]:
            try:
                job = services.job_submit(
                    url=url,
                    priority=opts["priority"],
                    options={
                        "force_refresh": opts["force_refresh"],
                        "skip_screening": opts["skip_screening"],
                    },
                    submitted_by=user,
                )
            except services.SubmitError as exc:
                rejected += 1
                self.stderr.write(f"{url}: {exc.message}")
                continue
            jobs.append(job)
            self.stdout.write(f"{job.pk} {job.status} {job.canonical_url}")
        failed = rejected
        if opts["wait"] and jobs:
            failed += self.follow(jobs, opts["timeout"])
        if failed:
            raise CommandError(f"{failed} of {len(opts['urls'])} URL(s) did not complete")

    def follow(self, jobs: list[Job], timeout: float) -> int:
        from ingestion.follow import follow_jobs

        bars = {
            job.pk: tqdm(total=100, desc=job.canonical_url[-40:], position=i, leave=True)
            for i, job in enumerate(jobs)
        }

        def on_event(job_id: Any, event: str, data: dict[str, Any], percent: int) -> None:
            bar = bars[job_id]
            bar.n = percent
            bar.set_postfix_str(data.get("message", event)[:40] if isinstance(data, dict) else "")
            bar.refresh()

        deadline = time.monotonic() + timeout
        final = follow_jobs([job.pk for job in jobs], on_event=on_event, deadline=deadline)
        for bar in bars.values():
            bar.close()
        failed = 0
        for job in jobs:
            status = final.get(job.pk, "timeout")
            if status != Status.COMPLETED:
                failed += 1
                job.refresh_from_db()
                self.stderr.write(f"{job.pk} {status}: {job.error_type} {job.error_message}")
            else:
                job.refresh_from_db()
                self.stdout.write(f"{job.pk} completed: {(job.result or {}).get('file_path')}")
        return failed
