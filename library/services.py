"""Every write to the library: analyse, embed, store, re-tier, re-tag, delete.

The Markdown file and the database row change together: a file is written
before the row commits and removed again if the row cannot be written.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from library import files
from library.models import Chunk, LibraryItem, Tag, Tier

log = logging.getLogger(__name__)

# Whether this process may write to Qdrant local mode (only one process can open it).
_index_owner = False


class AnalysisFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class StorageFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Embedded:
    chunks: list[str]
    vectors: np.ndarray
    embedder: str
    embedder_version: str


@dataclass
class Stored:
    item: LibraryItem
    result: dict[str, Any]
    near_duplicates: list[int] = field(default_factory=list)


def become_index_owner() -> None:
    """Called by the process that owns Qdrant local mode (the web server)."""
    global _index_owner
    _index_owner = True


def may_write_index() -> bool:
    return bool(settings.QDRANT_URL) or _index_owner


def item_by_url(url: str) -> LibraryItem | None:
    return LibraryItem.objects.filter(url=url).first()


def item_result(item: LibraryItem) -> dict[str, Any]:
    return {
        "item_id": item.pk,
        "file_path": item.file_path,
        "title": item.title,
        "url": item.url,
        "tier": item.tier,
        "quality_score": item.quality_score,
        "tags": item.tag_names(),
        "summary": item.summary,
        "word_count": item.word_count,
    }


def analyze_article(*, url: str, article: Any, skip_screening: bool = False) -> Any:
    from library.analysis import AnalysisError, Document, analyze

    doc = Document(
        url=url,
        title=article.title,
        text=article.text,
        markdown=article.markdown,
        site=article.site,
        author=article.author,
        published=article.published,
        language=article.language,
        description=article.description,
        html_length=article.html_length,
    )
    try:
        return analyze(doc, skip_screening=skip_screening)
    except AnalysisError as exc:
        raise AnalysisFailed(exc.reason, exc.message) from exc


def embed_article(text: str) -> Embedded:
    from library.chunking import chunk_text
    from library.embeddings import get_embedder

    embedder = get_embedder()
    chunks = chunk_text(text)
    vectors = embedder.embed(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)
    return Embedded(chunks, vectors, embedder.name, embedder.version)


def content_hash(text: str) -> str:
    normalised = re.sub(r"\s+", " ", text).strip().lower()
    return hashlib.sha256(normalised.encode()).hexdigest()


def front_matter(item: LibraryItem, tags: Sequence[str]) -> dict[str, Any]:
    return {
        "title": item.title,
        "url": item.url,
        "author": item.author or None,
        "site": item.site or None,
        "published": item.published or None,
        "language": item.language or None,
        "tier": item.tier,
        "quality_score": item.quality_score,
        "quality_reasons": list(item.quality_reasons),
        "flags": list(item.flags),
        "tags": list(tags),
        "summary": item.summary,
        "word_count": item.word_count,
        "content_hash": item.content_hash,
        "analyzer": item.analyzer,
        "analyzer_model": item.analyzer_model,
        "analyzer_version": item.analyzer_version,
        "prompt_version": item.prompt_version,
        "embedder": item.embedder,
        "created_at": item.created_at.isoformat(),
    }


def _unique_path(tier: str, title: str, url: str, item_pk: int | None) -> str:
    path = files.path_for(tier, files.slug_for(title, url))
    others = LibraryItem.objects.filter(file_path=path)
    if item_pk is not None:
        others = others.exclude(pk=item_pk)
    clash = others.exists()
    if clash:
        path = files.path_for(tier, f"{files.slug_for(title, url)}-{files.url_suffix(url)}")
    return path


def set_tags(item: LibraryItem, names: Iterable[str]) -> list[str]:
    tags = []
    for name in names:
        tag, _ = Tag.objects.get_or_create(name=name)
        tags.append(tag)
    item.tags.set(tags)
    return [t.name for t in tags]


def near_duplicates(*, url: str, digest: str, vectors: np.ndarray) -> list[int]:
    """Other items with the same content, or whose text is nearly the same."""
    same = list(
        LibraryItem.objects.filter(content_hash=digest)
        .exclude(url=url)
        .values_list("pk", flat=True)
    )
    if same or len(vectors) == 0:
        return same
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    from library.embeddings import bytes_to_vector

    threshold = settings.LIBRARIAN_NEAR_DUPLICATE_THRESHOLD
    found: dict[int, float] = {}
    rows = Chunk.objects.exclude(item__url=url).values_list("item_id", "vector")
    by_item: dict[int, list[np.ndarray]] = {}
    for item_id, blob in rows.iterator(chunk_size=2000):
        by_item.setdefault(item_id, []).append(bytes_to_vector(bytes(blob)))
    for item_id, vecs in by_item.items():
        other = np.mean(vecs, axis=0)
        other /= np.linalg.norm(other) or 1.0
        score = float(np.dot(centroid, other))
        if score >= threshold:
            found[item_id] = score
    return sorted(found, key=lambda k: -found[k])


def item_store(
    *,
    url: str,
    article: Any,
    analysis: Any,
    embedded: Embedded,
    extra_tags: Sequence[str] = (),
) -> Stored:
    """Upsert the item for `url`: its file, its row, its chunks and their vectors."""

    digest = content_hash(article.text)
    dupes = near_duplicates(url=url, digest=digest, vectors=embedded.vectors)
    existing = item_by_url(url)
    item = existing or LibraryItem(url=url, created_at=timezone.now())
    old_path = item.file_path if existing else ""
    item.title = (article.title or url)[:500]
    item.author = (article.author or "")[:300]
    item.site = (article.site or "")[:300]
    item.published = (article.published or "")[:40]
    item.language = (article.language or "")[:20]
    item.description = article.description or ""
    item.summary = analysis.summary
    item.tier = analysis.tier
    item.quality_score = analysis.quality_score
    item.quality_reasons = list(analysis.reasons)
    item.flags = list(analysis.flags)
    item.word_count = article.word_count
    item.reading_minutes = max(1, math.ceil(article.word_count / 230))
    item.content_hash = digest
    item.body = article.markdown or article.text
    item.analyzer = analysis.provider
    item.analyzer_model = analysis.model
    item.analyzer_version = analysis.analyzer_version
    item.prompt_version = analysis.prompt_version
    item.embedder = embedded.embedder
    item.embedder_version = embedded.embedder_version
    item.file_path = _unique_path(item.tier, item.title, url, item.pk)
    tags = list(analysis.tags)
    if extra_tags:
        from library.analysis.tags import normalise_tags

        tags = normalise_tags([*tags, *extra_tags], vocabulary=None, max_tags=50)
    try:
        files.write(item.file_path, files.render(front_matter(item, tags), item.body))
    except Exception as exc:
        raise StorageFailed(f"could not write {item.file_path}: {exc}") from exc
    try:
        with transaction.atomic():
            item.save()
            set_tags(item, tags)
            replace_chunks(item, embedded)
    except Exception:
        if item.file_path != old_path:
            files.delete(item.file_path)
        raise
    if old_path and old_path != item.file_path:
        files.delete(old_path)
    if may_write_index():
        index_item(item)
    result = item_result(item)
    if dupes:
        result["near_duplicate_of"] = dupes
    return Stored(item=item, result=result, near_duplicates=dupes)


def replace_chunks(item: LibraryItem, embedded: Embedded) -> None:
    """The item's passages and vectors become `embedded`'s (inside the caller's transaction)."""
    from library.embeddings import vector_to_bytes

    item.chunks.all().delete()
    Chunk.objects.bulk_create(
        Chunk(
            item=item,
            ordinal=i,
            text=text,
            vector=vector_to_bytes(embedded.vectors[i]),
            embedder=embedded.embedder,
        )
        for i, text in enumerate(embedded.chunks)
    )


def item_reembed(item: LibraryItem) -> None:
    """Embed the item again with the current embedder (after a model change)."""
    embedded = embed_article(item.body)
    with transaction.atomic():
        replace_chunks(item, embedded)
        LibraryItem.objects.filter(pk=item.pk).update(
            embedder=embedded.embedder, embedder_version=embedded.embedder_version
        )
    item.refresh_from_db()
    # The file records the embedder too, so the next rebuild finds nothing to change.
    item_rewrite_file(item)
    if may_write_index():
        index_item(item)


def index_item(item: LibraryItem) -> None:
    """Push an item's chunks into the vector index; failures leave them pending."""
    from library.embeddings import bytes_to_vector
    from library.vector_index import ChunkPoint, get_index

    try:
        index = get_index()
        index.delete_item(item.pk)
        tags = item.tag_names()
        chunks = list(item.chunks.all())
        index.upsert(
            [
                ChunkPoint(
                    chunk_id=c.pk,
                    item_id=item.pk,
                    ordinal=c.ordinal,
                    vector=bytes_to_vector(bytes(c.vector)),
                    tier=item.tier,
                    tags=tags,
                )
                for c in chunks
            ]
        )
        Chunk.objects.filter(pk__in=[c.pk for c in chunks]).update(indexed_at=timezone.now())
    except Exception:  # noqa: BLE001
        log.warning("indexing failed; chunks stay pending", extra={"item": item.pk}, exc_info=True)


def index_pending(limit: int = 1000) -> int:
    """Index items whose chunks were written by a process that may not open the index."""
    if not may_write_index():
        return 0
    from library.embeddings import get_embedder

    # Chunks of another embedder cannot share the collection: reindex --embed redoes them.
    item_ids = list(
        Chunk.objects.filter(indexed_at__isnull=True, embedder=get_embedder().name)
        .values_list("item_id", flat=True)
        .distinct()[:limit]
    )
    for item in LibraryItem.objects.filter(pk__in=item_ids):
        index_item(item)
    return len(item_ids)


def item_set_tier(item: LibraryItem, tier: str) -> LibraryItem:
    """Move the item to `tier`: its file moves folder and its front matter is rewritten.

    Storage first: if it fails nothing changes; if the row then fails, the old
    file is put back.
    """
    if tier not in Tier.values:
        raise ValueError(f"unknown tier {tier!r}")
    if tier == item.tier:
        return item
    old_tier, old_path = item.tier, item.file_path
    item.tier = tier
    new_path = _unique_path(tier, item.title, item.url, item.pk)
    try:
        files.write(new_path, files.render(front_matter(item, item.tag_names()), item.body))
    except Exception as exc:
        item.tier = old_tier
        raise StorageFailed(f"could not move {old_path} to {new_path}: {exc}") from exc
    try:
        LibraryItem.objects.filter(pk=item.pk).update(tier=tier, file_path=new_path)
    except Exception:
        files.delete(new_path)
        item.tier = old_tier
        raise
    if old_path != new_path:
        files.delete(old_path)
    item.file_path = new_path
    _refresh_index_payload(item)
    return item


def item_set_tags(item: LibraryItem, names: Iterable[str]) -> LibraryItem:
    from library.analysis.tags import normalise_tags

    clean = normalise_tags(list(names), vocabulary=None, max_tags=50)
    try:
        files.write(item.file_path, files.render(front_matter(item, clean), item.body))
    except Exception as exc:
        raise StorageFailed(f"could not rewrite {item.file_path}: {exc}") from exc
    with transaction.atomic():
        set_tags(item, clean)
        LibraryItem.objects.filter(pk=item.pk).update(updated_at=timezone.now())
    _refresh_index_payload(item)
    return item


def item_rewrite_file(item: LibraryItem) -> None:
    files.write(item.file_path, files.render(front_matter(item, item.tag_names()), item.body))


def item_delete(item: LibraryItem) -> None:
    path = item.file_path
    item_id = item.pk
    item.delete()
    files.delete(path)
    if may_write_index():
        try:
            from library.vector_index import get_index

            get_index().delete_item(item_id)
        except Exception:  # noqa: BLE001
            log.warning("could not drop item from index", extra={"item": item_id})


def _refresh_index_payload(item: LibraryItem) -> None:
    if not may_write_index():
        # The owner re-reads payloads when it indexes pending chunks.
        item.chunks.update(indexed_at=None)
        return
    try:
        from library.vector_index import get_index

        get_index().set_payload(item.pk, tier=item.tier, tags=item.tag_names())
    except Exception:  # noqa: BLE001
        item.chunks.update(indexed_at=None)
