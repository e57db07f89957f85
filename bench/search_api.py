"""Benchmark: `library.search.search` over 10,000 chunks in the database and the index.

    python bench/search_api.py

The embedded default (SQLite in a temporary folder, Qdrant local mode). Stores
1,250 items of 8 chunks each: 180-word passages made of plausible sentences, with
vectors from 500 really embedded sentences perturbed into distinct neighbours (as in
bench/search.py; embedding 10,000 passages for real would take minutes and measure
the embedder, not the search). Rebuilds the vector index as its owner, then times
200 searches per row, limit 10, each including the query's embedding, the keyword
query, the fusion and loading the items. Prints `## Search API` with p50/p99; the
goal is p99 under 50 ms.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ITEMS = 1250
CHUNKS_PER_ITEM = 8
SEEDS = 500
QUERIES = int(os.environ.get("BENCH_QUERIES", "200"))
TIERS = ["tier-a", "tier-b", "tier-c", "tier-d"]
TAGS = ["python", "databases", "gardening", "economics", "music", "travel", "science", "history"]


def percentiles(timings: list[float]) -> tuple[float, float]:
    ms = np.asarray(timings) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="librarian-bench-search-"))
    try:
        run(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(data_dir: Path) -> None:
    os.environ.update(
        LIBRARIAN_TESTING="1",
        LIBRARIAN_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="librarian.settings",
    )
    for name in ("DATABASE_URL", "REDIS_URL", "QDRANT_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from bench.embeddings import chunks, sentences
    from library import search, services
    from library.embeddings import get_embedder, vector_to_bytes
    from library.models import Chunk, LibraryItem, Tag

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(2024)
    embedder = get_embedder()
    texts = sentences(SEEDS + QUERIES)
    seeds = embedder.embed(texts[:SEEDS])
    queries = texts[SEEDS:]
    total = ITEMS * CHUNKS_PER_ITEM
    base = seeds[np.arange(total) % SEEDS]
    vectors = base + rng.standard_normal(base.shape).astype(np.float32) * 0.02
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    passages = chunks(total)

    start = time.perf_counter()
    tags = {name: Tag.objects.create(name=name) for name in TAGS}
    items = LibraryItem.objects.bulk_create(
        LibraryItem(
            url=f"https://example.com/article-{i}",
            title=passages[i * CHUNKS_PER_ITEM][:80],
            summary=passages[i * CHUNKS_PER_ITEM][:300],
            tier=TIERS[int(rng.integers(len(TIERS)))],
            content_hash=f"{i:064x}",
            file_path=f"library/bench/{i}.md",
            embedder=embedder.name,
            created_at=timezone.now(),
        )
        for i in range(ITEMS)
    )
    through = LibraryItem.tags.through
    through.objects.bulk_create(
        through(libraryitem_id=item.pk, tag_id=tags[str(name)].pk)
        for item in items
        for name in rng.choice(TAGS, size=int(rng.integers(1, 4)), replace=False)
    )
    Chunk.objects.bulk_create(
        (
            Chunk(
                item=items[i // CHUNKS_PER_ITEM],
                ordinal=i % CHUNKS_PER_ITEM,
                text=passages[i],
                vector=vector_to_bytes(vectors[i]),
                embedder=embedder.name,
            )
            for i in range(total)
        ),
        batch_size=1000,
    )
    store_s = time.perf_counter() - start

    services.become_index_owner()
    start = time.perf_counter()
    indexed = search.catch_up()
    index_s = time.perf_counter() - start
    assert indexed == total, indexed

    def timed(run: Callable[[str], object]) -> tuple[float, float]:
        run(queries[0])  # the first search pays for loading the collection
        timings = []
        for query in queries:
            began = time.perf_counter()
            run(query)
            timings.append(time.perf_counter() - began)
        return percentiles(timings)

    def searcher(mode: search.Mode, **filters: Any) -> Callable[[str], object]:
        return lambda q: search.search(q=q, mode=mode, **filters)

    modes: tuple[search.Mode, ...] = ("keyword", "semantic", "hybrid")
    rows: list[tuple[str, tuple[float, float]]] = [(m, timed(searcher(m))) for m in modes]
    for mode in modes:
        rows.append((f"{mode}, tier = tier-b", timed(searcher(mode, tier="tier-b"))))
        rows.append(
            (
                f"{mode}, tier = tier-a, tags = python + history",
                timed(searcher(mode, tier="tier-a", tags=["python", "history"])),
            )
        )
    sample = search.search(q=queries[0], mode="hybrid")
    item_ids = [hit.item.pk for hit in sample]
    rows.append(
        (
            "similar items",
            timed(lambda q: search.similar_items(LibraryItem.objects.get(pk=item_ids[0]))),
        )
    )
    begin = time.perf_counter()
    embedder.embed([queries[1]])
    embed_ms = (time.perf_counter() - begin) * 1000

    print("## Search API")
    print()
    print(
        f"`library.search.search` on the embedded default (SQLite FTS5, Qdrant local mode): "
        f"{ITEMS:,} items, {total:,} chunks of {embedder.dim} dimensions; {QUERIES} "
        "searches per row, limit 10, each including the query's embedding."
    )
    print()
    print(f"Storing the rows: {store_s:.1f} s. Indexing them as the owner: {index_s:.1f} s.")
    print(f"Embedding one query: {embed_ms:.1f} ms.")
    print()
    print("| search | p50 ms | p99 ms | goal p99 < 50 ms |")
    print("|---|---|---|---|")
    for name, (p50, p99) in rows:
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {'met' if p99 < 50 else 'missed'} |")


if __name__ == "__main__":
    main()
