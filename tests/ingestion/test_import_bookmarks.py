"""import_bookmarks submits each bookmark once, reports the rest, and tags from folders."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.db import connection

from ingestion import services
from ingestion.models import Job, Status
from ingestion.tasks import run_next_job
from library import files
from library.models import LibraryItem
from tests.conftest import LONG_PARAGRAPHS, article_html
from tests.library.factories import make_item


def bookmarks_html(*entries: tuple[str, str]) -> str:
    """Netscape bookmarks: (folder, url) pairs, each folder once, inside the bookmarks bar."""
    folders: dict[str, list[str]] = {}
    for folder, url in entries:
        folders.setdefault(folder, []).append(url)
    body = "".join(
        f"<DT><H3>{folder}</H3>\n<DL><p>\n{''.join(f'<DT><A HREF={u!r}>{u}</A>' for u in urls)}"
        "\n</DL><p>\n"
        for folder, urls in folders.items()
    )
    return (
        "<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<TITLE>Bookmarks</TITLE>\n<DL><p>\n"
        f'<DT><H3 PERSONAL_TOOLBAR_FOLDER="true">Bookmarks bar</H3>\n<DL><p>\n{body}</DL><p>\n'
        "</DL><p>\n"
    )


class Worker:
    """The queue task run in a loop on a thread of its own, as a cluster's worker runs it.

    In-process rather than a qcluster: the broker is only transport (the jobs
    table is the queue of record), and a test suite sharing Redis with another
    one must not have its tasks taken by that suite's workers.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if run_next_job() is None:
                    self.stop.wait(0.1)
        finally:
            connection.close()

    def __enter__(self) -> Worker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def run_import(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_bookmarks", str(path), "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_it_explains_itself_with_help():
    command = load_command_class("ingestion", "import_bookmarks")
    text = command.create_parser("manage.py", "import_bookmarks").format_help()
    assert "--failures" in text and "--wait" in text and "FILE" in text


@pytest.mark.django_db
def test_it_submits_each_url_once_and_reports_duplicates(alice, tmp_path):
    item = make_item("Already here", url="https://example.com/here")
    queued = services.job_submit(url="https://example.com/queued", submitted_by=alice)
    source = tmp_path / "bookmarks.html"
    source.write_text(
        bookmarks_html(
            ("Reading", "https://example.com/new-one"),
            ("Reading", "https://example.com/here"),
            ("Later", "https://example.com/queued"),
            ("Later", "https://example.com/new-one?utm_source=feed"),
            ("Later", "https://example.com/new-two"),
            ("Broken", "https://user:secret@example.com/private"),
            ("Broken", "javascript:void(0)"),
        )
    )
    failures = tmp_path / "failed.txt"
    with pytest.raises(CommandError, match="1 URL"):
        run_import(source, "--failures", str(failures), "--user", "alice")

    new_jobs = Job.objects.exclude(pk=queued.pk)
    assert sorted(new_jobs.values_list("canonical_url", flat=True)) == [
        "https://example.com/new-one",
        "https://example.com/new-two",
    ]
    assert {j.priority_label for j in new_jobs} == {"low"}
    assert {j.submitted_by_id for j in new_jobs} == {alice.pk}
    assert Job.objects.filter(canonical_url="https://example.com/here").count() == 0
    lines = failures.read_text().splitlines()
    assert lines[1] == (
        "https://user:secret@example.com/private  "
        "# URLs with a user name or password cannot be submitted"
    )
    assert lines[2] == "javascript:void(0)  # skipped: not an http(s) URL"
    item.refresh_from_db()
    assert item.tag_names() == ["reading"]


@pytest.mark.django_db
def test_it_prints_a_summary_and_is_safe_to_run_again(tmp_path):
    make_item("Already here", url="https://example.com/here", tags=["bees"])
    source = tmp_path / "urls.txt"
    source.write_text("https://example.com/here\nhttps://example.com/a\nhttps://example.com/a\n")
    first = run_import(source)
    assert first.splitlines()[0] == (
        "3 bookmark(s), 2 unique URL(s): 1 submitted, 1 already in the library, "
        "0 already queued, 1 repeated in the file, 0 skipped (not http), 0 failed; "
        "0 item(s) tagged from folders"
    )
    again = run_import(source)
    assert "0 submitted, 1 already in the library, 1 already queued" in again
    assert Job.objects.count() == 1
    assert not (tmp_path / "import-failures.txt").exists()


@pytest.mark.django_db
def test_it_tags_items_once_however_often_it_runs(tmp_path):
    item = make_item("Already here", url="https://example.com/here", tags=["bees"])
    source = tmp_path / "bookmarks.html"
    source.write_text(bookmarks_html(("Garden Notes", "https://example.com/here")))
    assert "1 item(s) tagged" in run_import(source)
    item.refresh_from_db()
    assert item.tag_names() == ["bees", "garden notes"]
    assert files.parse(files.read(item.file_path))[0]["tags"] == ["bees", "garden notes"]
    assert "0 item(s) tagged" in run_import(source)


@pytest.mark.django_db
def test_it_fails_on_a_file_it_cannot_read(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run_import(tmp_path / "missing.html")


@pytest.mark.django_db
def test_it_fails_for_an_unknown_user(tmp_path):
    source = tmp_path / "urls.txt"
    source.write_text("https://example.com/a\n")
    with pytest.raises(CommandError, match="no user"):
        run_import(source, "--user", "nobody")


@pytest.mark.django_db(transaction=True)
def test_it_waits_for_the_worker_and_tags_what_arrived(page_server, tmp_path):
    good = page_server.add("/bees", article_html("Bees and orchards", LONG_PARAGRAPHS))
    missing = good.replace("/bees", "/gone")
    source = tmp_path / "bookmarks.html"
    source.write_text(bookmarks_html(("Garden", good), ("Garden", missing)))
    failures = tmp_path / "failures.txt"
    with Worker(), pytest.raises(CommandError, match="1 URL"):
        run_import(source, "--wait", "--timeout", "120", "--failures", str(failures))
    item = LibraryItem.objects.get(url=good)
    assert "garden" in item.tag_names()
    assert Job.objects.get(canonical_url=missing).status == Status.FAILED
    (line,) = failures.read_text().splitlines()[1:]
    assert line.startswith(f"{missing}  # http_status: ")
