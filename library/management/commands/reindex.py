"""manage.py reindex: rebuild the search indexes from the database.

The database holds every chunk's text and vector, so both indexes can always be
rebuilt: the keyword index (PostgreSQL tsvector / SQLite FTS5) and the vector
collection (dropped, then filled with every chunk). `--embed` first re-embeds
items whose chunks another embedder made (after a model change) or that have none.

In the embedded default only one process can open Qdrant local mode. When the web
server holds it, this command cannot rebuild the collection itself: it marks every
chunk pending instead, and the server rebuilds the collection from the database
before its next search (see `library.search.catch_up`).
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from library import search, services, vector_index
from library.embeddings import get_embedder
from library.models import Chunk, LibraryItem


class Command(BaseCommand):
    help = (
        "Rebuild the keyword index and the vector index from the chunks in the database. "
        "--embed first re-embeds chunks made by another embedder (after a model change)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--embed",
            action="store_true",
            help="re-embed items whose chunks another embedder made, or that have no chunks",
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    def handle(self, *args: Any, **opts: Any) -> None:
        quiet = opts["no_progress"]
        embedded = self._embed(quiet) if opts["embed"] else 0
        search.install_keyword_index(force=True)
        self.stdout.write("keyword index rebuilt")
        try:
            vector_index.get_index()
        except RuntimeError:
            # Local mode, and the web server holds the folder: hand the job to it.
            pending = Chunk.objects.update(indexed_at=None)
            self.stdout.write(
                f"the web server holds the local vector index: marked {pending} chunks "
                "pending; it rebuilds the index from them before its next search"
            )
            return
        chunks = Chunk.objects.filter(embedder=get_embedder().name).count()
        with tqdm(total=chunks, desc="indexing", unit="chunk", disable=quiet) as bar:
            indexed = search.rebuild_index(progress=bar.update)
        self.stdout.write(f"embedded={embedded} indexed={indexed}")

    def _embed(self, quiet: bool) -> int:
        name = get_embedder().name
        stale = set(Chunk.objects.exclude(embedder=name).values_list("item_id", flat=True))
        stale |= set(LibraryItem.objects.filter(chunks__isnull=True).values_list("pk", flat=True))
        failures = []
        items = LibraryItem.objects.filter(pk__in=stale).order_by("pk")
        for item in tqdm(items, total=len(stale), desc="embedding", unit="item", disable=quiet):
            try:
                services.item_reembed(item)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{item.pk} {item.url}: {type(exc).__name__}: {exc}")
        for failure in failures:
            self.stderr.write(failure)
        if failures:
            raise CommandError(f"{len(failures)} item(s) could not be embedded")
        return len(stale)
