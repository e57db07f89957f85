"""Benchmark: how fast the local numpy MiniLM embeds, as a Markdown section.

    python bench/embeddings.py

Prints `## Embeddings` to stdout: model load time, sentences per second at batch
sizes 1 and 32, and milliseconds per 180-word chunk (the size the chunker makes).
Each figure is the best of a few rounds, so other load on the machine skews it less.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

SUBJECTS = [
    "The city council",
    "A small bakery in Lyon",
    "Researchers at the university",
    "The new database release",
    "Our hiking group",
    "The central bank",
    "A volunteer firefighter",
    "The open-source community",
    "Farmers in the valley",
    "The museum's curator",
]
VERBS = [
    "announced plans for",
    "spent the winter studying",
    "quietly abandoned",
    "published a detailed report on",
    "asked readers for opinions about",
    "doubled its budget for",
    "raised concerns about",
    "celebrated the success of",
    "is still arguing about",
    "wrote a short guide to",
]
OBJECTS = [
    "a cheaper way to heat old houses",
    "the migration of swallows across the Sahara",
    "write-ahead logging and crash recovery",
    "sourdough starters that survive a week without feeding",
    "interest rates and housing prices",
    "restoring a nineteenth-century clock tower",
    "bees and the yield of apple orchards",
    "a faster train line between the two coasts",
    "teaching children to read music",
    "the safety of lithium batteries in cold weather",
]
ENDINGS = ["", " last week", " after years of delay", " despite the rain", " in a public meeting"]


def sentences(count: int) -> list[str]:
    """`count` distinct, plausible English sentences, always the same ones."""
    combos = [
        f"{s} {v} {o}{e}." for s, v, o, e in itertools.product(SUBJECTS, VERBS, OBJECTS, ENDINGS)
    ]
    if count > len(combos):
        raise ValueError(f"only {len(combos)} sentences available")
    # Striding by a number prime to the total mixes neighbours that differ in one part.
    return [combos[i * 7 % len(combos)] for i in range(count)]


def chunks(count: int, words: int = 180) -> list[str]:
    """`count` passages of about `words` words, like the chunker's output."""
    pool = sentences(2000)
    out = []
    for i in range(count):
        text: list[str] = []
        j = i * 17
        while len(text) < words:
            text.extend(pool[j % len(pool)].split())
            j += 1
        out.append(" ".join(text[:words]))
    return out


def best_of(rounds: int, work: Callable[[], object]) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from library.embeddings import LocalEmbedder, _load_model

    start = time.perf_counter()
    _load_model()
    load_s = time.perf_counter() - start

    single = LocalEmbedder(batch_size=1)
    batched = LocalEmbedder(batch_size=32)
    short = sentences(256)
    passages = chunks(32)
    single.embed(short[:4])  # warm up BLAS threads and caches

    one_by_one = best_of(3, lambda: [single.embed([s]) for s in short[:64]]) / 64
    in_batches = best_of(3, lambda: batched.embed(short)) / len(short)
    chunk_alone = best_of(3, lambda: [single.embed([p]) for p in passages[:8]]) / 8
    chunk_batched = best_of(3, lambda: batched.embed(passages)) / len(passages)

    print("## Embeddings")
    print()
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"Local all-MiniLM-L6-v2 in numpy, {os.cpu_count()} CPUs, BLAS threads: {threads}.")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| model load | {load_s * 1000:.0f} ms |")
    print(f"| sentences/s, batch size 1 | {1 / one_by_one:.0f} |")
    print(f"| sentences/s, batch size 32 | {1 / in_batches:.0f} |")
    print(f"| ms per 180-word chunk, one at a time | {chunk_alone * 1000:.1f} |")
    print(f"| ms per 180-word chunk, batch of 32 | {chunk_batched * 1000:.1f} |")
    print(f"| 180-word chunks/s | {1 / min(chunk_alone, chunk_batched):.1f} |")


if __name__ == "__main__":
    main()
