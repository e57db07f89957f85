"""manage.py import_bookmarks FILE: submit every bookmark of an export, once.

Duplicates are counted, never fetched again: a URL repeated in the file, one
already in the library, one a job already carries. The folders a bookmark sat
in become tags of its library item; items that exist get them now (and after
`--wait`, the ones this import created). Re-running the same import is safe:
it submits nothing twice and tags what has arrived since. A list of what failed
is written at the end, in a form this command can import again.
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ingestion import services
from ingestion.canonical import InvalidURL, check_submittable
from ingestion.models import ACTIVE_STATUSES, Job, Status
from library import services as library_services
from library.bookmarks import parse_bookmarks


@dataclass
class Entry:
    """One canonical URL of the file, with every folder tag its copies carried."""

    url: str
    canonical: str
    tags: list[str] = field(default_factory=list)
    outcome: str = ""
    job: Job | None = None


@dataclass
class Report:
    read: int = 0
    repeated: int = 0
    in_library: int = 0
    queued_already: int = 0
    submitted: int = 0
    completed: int = 0
    tagged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self, unique: int) -> str:
        return (
            f"{self.read} bookmark(s), {unique} unique URL(s): {self.submitted} submitted, "
            f"{self.in_library} already in the library, {self.queued_already} already queued, "
            f"{self.repeated} repeated in the file, {len(self.skipped)} skipped (not http), "
            f"{len(self.failures)} failed; {self.tagged} item(s) tagged from folders"
            + (f"; {self.completed} completed" if self.completed else "")
        )


def add_folder_tags(item: Any, tags: list[str]) -> bool:
    """Merge `tags` into the item's own; True when that changed anything."""
    from library.analysis.tags import normalise_tags

    current = item.tag_names()
    merged = normalise_tags([*current, *tags], vocabulary=None, max_tags=50)
    if merged == current:
        return False
    library_services.item_set_tags(item, merged)
    return True


class Command(BaseCommand):
    help = (
        "Import a bookmark export (Netscape HTML from browsers, Pocket, Karakeep, …) or a "
        "plain list of URLs. Folders become tags; duplicates are reported, not re-fetched."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", metavar="FILE", help="bookmarks HTML or one URL per line")
        parser.add_argument(
            "--priority",
            choices=["high", "normal", "low"],
            default="low",
            help="job priority (default low, so an import never delays URLs sent by hand)",
        )
        parser.add_argument("--user", help="submit as this user (default: first superuser)")
        parser.add_argument(
            "--failures",
            default="import-failures.txt",
            metavar="FILE",
            help="where to list what failed (default import-failures.txt); importable again",
        )
        parser.add_argument("--wait", action="store_true", help="wait for the jobs to finish")
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["file"])
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        user = self._user(opts["user"])
        quiet = bool(opts["no_progress"])
        report = Report()
        entries = self._entries(text, report)
        for entry in tqdm(entries, desc="submitting", unit="url", disable=quiet):
            self._submit(entry, opts["priority"], user, report)
        if opts["wait"]:
            self._wait(entries, opts["timeout"], quiet, report)
        for entry in entries:
            item = library_services.item_by_url(entry.canonical) if entry.tags else None
            if item is not None and add_folder_tags(item, entry.tags):
                report.tagged += 1
        self.stdout.write(report.summary(len(entries)))
        # Submitted jobs carry their folder tags; a job someone else had already
        # queued does not, so its item is tagged by a later run of this import.
        waiting = sum(1 for e in entries if e.tags and e.outcome == "queued")
        if waiting and not opts["wait"]:
            self.stdout.write(
                f"{waiting} URL(s) were already being fetched: run this import again once "
                "they finish (or use --wait) to add their folder tags"
            )
        self._write_failures(Path(opts["failures"]), report)
        if report.failures:
            raise CommandError(f"{len(report.failures)} URL(s) failed; see {opts['failures']}")

    def _user(self, name: str | None) -> Any:
        users = get_user_model().objects
        if name:
            user = users.filter(username=name).first()
            if user is None:
                raise CommandError(f"no user named {name!r}")
            return user
        return users.filter(is_superuser=True).order_by("pk").first()

    def _entries(self, text: str, report: Report) -> list[Entry]:
        found = parse_bookmarks(text)
        report.read = len(found.bookmarks) + len(found.skipped)
        report.skipped = found.skipped
        by_url: dict[str, Entry] = {}
        for bookmark in found.bookmarks:
            try:
                canonical = check_submittable(bookmark.url)
            except InvalidURL as exc:
                report.failures.append((bookmark.url, str(exc)))
                continue
            entry = by_url.get(canonical)
            if entry is None:
                entry = by_url[canonical] = Entry(url=bookmark.url, canonical=canonical)
            else:
                report.repeated += 1
            entry.tags.extend(t for t in bookmark.tags if t not in entry.tags)
        return list(by_url.values())

    def _submit(self, entry: Entry, priority: str, user: Any, report: Report) -> None:
        if library_services.item_by_url(entry.canonical) is not None:
            entry.outcome = "in_library"
            report.in_library += 1
            return
        active = Job.objects.filter(canonical_url=entry.canonical, status__in=ACTIVE_STATUSES)
        if (job := active.first()) is not None:
            entry.outcome, entry.job = "queued", job
            report.queued_already += 1
            return
        try:
            job = services.job_submit(
                url=entry.url, priority=priority, submitted_by=user, tags=entry.tags
            )
        except services.DuplicateJob as exc:
            entry.outcome, entry.job = "queued", exc.job
            report.queued_already += 1
            return
        except services.SubmitError as exc:
            entry.outcome = "failed"
            report.failures.append((entry.url, exc.message))
            return
        if job.status == Status.COMPLETED:
            # Arrived in the library between our check and the submission.
            entry.outcome = "in_library"
            report.in_library += 1
            return
        entry.outcome, entry.job = "submitted", job
        report.submitted += 1

    def _wait(self, entries: list[Entry], timeout: float, quiet: bool, report: Report) -> None:
        from ingestion.follow import follow_jobs

        waiting = {e.job.pk: e for e in entries if e.job is not None}
        if not waiting:
            return
        finished: set[Any] = set()
        with tqdm(total=len(waiting), desc="fetching", unit="job", disable=quiet) as bar:

            def on_event(job_id: Any, event: str, data: dict[str, Any], percent: int) -> None:
                if event in ("job_completed", "error", "job_cancelled"):
                    finished.add(job_id)
                    bar.n = len(finished)
                    bar.refresh()

            final = follow_jobs(
                list(waiting), on_event=on_event, deadline=time.monotonic() + timeout
            )
        for job_id, entry in waiting.items():
            status = final.get(job_id)
            if status == Status.COMPLETED:
                report.completed += 1
                continue
            if status is None:
                report.failures.append((entry.url, f"still processing after {timeout:.0f} s"))
                continue
            job = Job.objects.get(pk=job_id)
            reason = f"{job.error_type}: {job.error_message}" if job.error_type else status
            report.failures.append((entry.url, reason))

    def _write_failures(self, path: Path, report: Report) -> None:
        lines = [f"{url}  # {reason}" for url, reason in report.failures]
        lines += [f"{url}  # skipped: not an http(s) URL" for url in report.skipped]
        if not lines:
            return
        try:
            path.write_text(
                "# URLs this import could not add; `import_bookmarks` reads this file too.\n"
                + "\n".join(lines)
                + "\n",
                encoding="utf-8",
            )
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from exc
        self.stdout.write(f"listed {len(lines)} URL(s) that were not imported in {path}")
