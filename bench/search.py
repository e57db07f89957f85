"""Benchmark: vector search over 10,000 chunks in Qdrant local mode, as Markdown.

    python bench/search.py

Embeds 500 real sentences with the local model, perturbs them into 10,000
distinct unit vectors (near-duplicates cluster the way chunks of similar articles
do), upserts them into a local-mode index in a temporary folder, then times 200
searches without a filter, with a tier filter and with a tag filter. Prints
`## Search` with p50/p99 latencies; the goal is p99 under 50 ms.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

POINTS = 10_000
SEEDS = 500
QUERIES = 200
TIERS = ["A", "B", "C", "D"]
TAGS = ["python", "databases", "gardening", "economics", "music", "travel", "science", "history"]


def percentiles(timings: list[float]) -> tuple[float, float]:
    ms = np.asarray(timings) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.embeddings import sentences
    from library.embeddings import LocalEmbedder
    from library.vector_index import ChunkPoint, VectorIndex

    rng = np.random.default_rng(2024)
    embedder = LocalEmbedder()
    texts = sentences(SEEDS + QUERIES)
    start = time.perf_counter()
    seeds = embedder.embed(texts[:SEEDS])
    queries = embedder.embed(texts[SEEDS:])
    embed_s = time.perf_counter() - start

    base = seeds[np.arange(POINTS) % SEEDS]
    noise = rng.standard_normal(base.shape).astype(np.float32) * 0.02
    vectors = base + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [
        ChunkPoint(
            chunk_id=i + 1,
            item_id=i // 8 + 1,
            ordinal=i % 8,
            vector=vectors[i],
            tier=TIERS[int(rng.integers(len(TIERS)))],
            tags=list(rng.choice(TAGS, size=int(rng.integers(1, 4)), replace=False)),
        )
        for i in range(POINTS)
    ]

    with tempfile.TemporaryDirectory() as folder:
        index = VectorIndex(embedder_name=embedder.name, dim=embedder.dim, path=Path(folder))
        index.ensure_collection()
        start = time.perf_counter()
        index.upsert(points)
        upsert_s = time.perf_counter() - start
        assert index.count() == POINTS

        def timed(search: Callable[[np.ndarray], object]) -> tuple[float, float]:
            search(queries[0])  # the first query pays for loading the collection
            timings = []
            for query in queries:
                began = time.perf_counter()
                search(query)
                timings.append(time.perf_counter() - began)
            return percentiles(timings)

        rows = [
            ("no filter", timed(lambda q: index.search(q, limit=10))),
            ("tier = B", timed(lambda q: index.search(q, limit=10, tier="B"))),
            ("tag = science", timed(lambda q: index.search(q, limit=10, tags=["science"]))),
            (
                "tier = A, tags = python + history",
                timed(lambda q: index.search(q, limit=10, tier="A", tags=["python", "history"])),
            ),
        ]
        index.close()

    print("## Search")
    print()
    print(
        f"Qdrant local mode, {POINTS:,} chunks of {embedder.dim} dimensions "
        f"({SEEDS} embedded sentences, perturbed); {QUERIES} searches each, limit 10."
    )
    print()
    print(f"Embedding {SEEDS + QUERIES} sentences: {embed_s:.1f} s.")
    print(f"Upserting {POINTS:,} points: {upsert_s:.1f} s ({POINTS / upsert_s:,.0f} points/s).")
    print()
    print("| search | p50 ms | p99 ms | goal p99 < 50 ms |")
    print("|---|---|---|---|")
    for name, (p50, p99) in rows:
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {'met' if p99 < 50 else 'missed'} |")


if __name__ == "__main__":
    main()
