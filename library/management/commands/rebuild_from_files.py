"""manage.py rebuild_from_files: recreate the library's rows from its Markdown files.

The files are the portable source of truth: their front matter holds everything
an item is, so a new database (or one restored from an old dump) can be brought
back in step with them. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import math
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from library import services
from library.export import LibraryFile, UnreadableFile, library_paths, read_library_file
from library.models import LibraryItem, Tier

# Front-matter keys copied onto the row as they are (text fields).
TEXT_FIELDS = {
    "title": 500,
    "author": 300,
    "site": 300,
    "published": 40,
    "language": 20,
    "summary": None,
    "analyzer": 100,
    "analyzer_model": 200,
    "analyzer_version": 50,
    "prompt_version": 50,
    "embedder": 100,
}
COMPARED = [
    *TEXT_FIELDS,
    "tier",
    "quality_score",
    "quality_reasons",
    "flags",
    "word_count",
    "reading_minutes",
    "content_hash",
    "body",
    "file_path",
    "created_at",
]


class BadFile(Exception):
    pass


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _created_at(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        when: dt.datetime | None = value
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day)
    else:
        when = parse_datetime(_text(value)) if value else None
    if when is not None and timezone.is_naive(when):
        when = timezone.make_aware(when, dt.UTC)
    return when


def _tier(found: LibraryFile) -> str:
    tier = _text(found.meta.get("tier"))
    if tier in Tier.values:
        return tier
    folder = found.path.split("/")[1] if found.path.count("/") >= 2 else ""
    if folder in Tier.values:
        return folder
    raise BadFile(f"no valid tier in the front matter or the folder ({tier!r})")


def _apply(item: LibraryItem, found: LibraryFile) -> None:
    meta = found.meta
    for name, width in TEXT_FIELDS.items():
        value = _text(meta.get(name))
        setattr(item, name, value[:width] if width else value)
    item.title = item.title or item.url[:500]
    item.tier = _tier(found)
    try:
        item.quality_score = float(meta.get("quality_score") or 0.0)
        item.word_count = max(0, int(meta.get("word_count") or len(found.body.split())))
    except (TypeError, ValueError) as exc:
        raise BadFile(f"quality_score and word_count must be numbers: {exc}") from exc
    item.quality_reasons = [_text(r) for r in meta.get("quality_reasons") or []]
    item.flags = [_text(f) for f in meta.get("flags") or []]
    item.reading_minutes = max(1, math.ceil(item.word_count / 230))
    if (item.body or "").strip() != found.body.strip():
        # Compared stripped: a file holds its body trimmed, the row as extracted.
        item.body = found.body.strip()
    item.content_hash = _text(meta.get("content_hash")) or services.content_hash(item.body)
    item.file_path = found.path
    item.created_at = _created_at(meta.get("created_at")) or item.created_at or timezone.now()


def _snapshot(item: LibraryItem) -> tuple[Any, ...]:
    return tuple(getattr(item, name) for name in COMPARED)


def restore_item(found: LibraryFile) -> tuple[LibraryItem, str]:
    """Upsert the row a file describes; returns it and "created", "updated" or "unchanged"."""
    url = _text(found.meta.get("url")).strip()
    if not url:
        raise BadFile("no url in the front matter")
    tags = [_text(t) for t in found.meta.get("tags") or [] if _text(t).strip()]
    item = services.item_by_url(url)
    outcome = "updated"
    before: tuple[Any, ...] = ()
    if item is None:
        item, outcome = LibraryItem(url=url, created_at=timezone.now()), "created"
    else:
        before = _snapshot(item)
    body_before = item.body
    _apply(item, found)
    same_tags = outcome == "updated" and sorted(item.tag_names()) == sorted(tags)
    if outcome == "updated" and _snapshot(item) == before and same_tags:
        return item, "unchanged"
    with transaction.atomic():
        item.save()
        services.set_tags(item, tags)
        if item.body != body_before:
            # Vectors of another text would answer searches wrongly; --embed makes new ones.
            item.chunks.all().delete()
    return item, outcome


def needs_embedding(item: LibraryItem, embedder_name: str) -> bool:
    chunks = item.chunks.all()
    return not chunks.exists() or chunks.exclude(embedder=embedder_name).exists()


class Command(BaseCommand):
    help = (
        "Recreate library items and tags from the Markdown files' front matter (local disk "
        "or S3). Idempotent. --embed re-embeds items whose chunks are missing or stale."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--embed",
            action="store_true",
            help="embed items with no chunks, changed text or another embedder's vectors",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete items whose file no longer exists (the files are the truth)",
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            paths = library_paths()
        except Exception as exc:
            raise CommandError(f"could not list the library: {exc}") from exc
        counts = dict.fromkeys(("created", "updated", "unchanged", "embedded", "pruned"), 0)
        errors: list[str] = []
        seen: dict[str, str] = {}
        restored: list[LibraryItem] = []
        for path in tqdm(paths, desc="rebuilding", unit="file", disable=opts["no_progress"]):
            try:
                found = read_library_file(path)
                url = _text(found.meta.get("url")).strip()
                if url in seen:
                    raise BadFile(f"same url as {seen[url]}; kept that one")
                item, outcome = restore_item(found)
            except (UnreadableFile, BadFile, OSError) as exc:
                errors.append(f"{path}: {exc}")
                continue
            seen[url] = path
            counts[outcome] += 1
            restored.append(item)
        if opts["embed"]:
            counts["embedded"] = self._embed(restored, opts["no_progress"], errors)
        if opts["prune"]:
            counts["pruned"] = self._prune(set(paths))
        self.stdout.write(" ".join(f"{name}={n}" for name, n in counts.items()))
        for error in errors:
            self.stderr.write(error)
        if errors:
            raise CommandError(f"{len(errors)} file(s) could not be restored")

    def _prune(self, present: set[str]) -> int:
        # Any file that exists keeps its row, even one that failed to parse above.
        if not present and LibraryItem.objects.exists():
            raise CommandError("no files found: refusing to prune every item (wrong storage?)")
        gone = [
            item
            for item in LibraryItem.objects.only("pk", "file_path").iterator()
            if item.file_path not in present
        ]
        for item in gone:
            services.item_delete(item)
        return len(gone)

    def _embed(self, items: list[LibraryItem], quiet: bool, errors: list[str]) -> int:
        from library.embeddings import get_embedder

        name = get_embedder().name
        stale = [item for item in items if needs_embedding(item, name)]
        done = 0
        for item in tqdm(stale, desc="embedding", unit="item", disable=quiet):
            try:
                services.item_reembed(item)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{item.file_path}: embedding failed: {type(exc).__name__}: {exc}")
                continue
            done += 1
        return done
