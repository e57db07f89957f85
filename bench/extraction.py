"""Benchmark the article extractor on a dataset folder and print a Markdown section.

Usage: python bench/extraction.py DATASET_DIR

Prints `## Extraction` with the benchmark score and timing of the project's
extractor, next to trafilatura with its defaults (comments off, as the published
results run it) for comparison.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trafilatura  # noqa: E402

from ingestion.extraction import extract_article  # noqa: E402
from ingestion.extraction_score import (  # noqa: E402
    dataset_pages,
    dataset_truth,
    percentile,
    run_pages,
    score,
)


def project_extractor(html: str) -> str:
    article = extract_article(html)
    return article.text if article else ""


def trafilatura_defaults(html: str) -> str:
    return trafilatura.extract(html, include_comments=False) or ""


def table_row(name: str, extract: Callable[[str], str], dataset: Path) -> str:
    pages = dataset_pages(dataset)
    truth = dataset_truth(dataset) or {}
    predictions: dict[str, str] = {}
    timings: list[float] = []
    for result in run_pages(pages, extract):
        predictions[result.key] = result.text
        timings.append(result.seconds * 1000)
    f1, precision, recall = score(truth, predictions)
    return (
        f"| {name} | {f1:.3f} | {precision:.3f} | {recall:.3f} | {len(pages)} "
        f"| {statistics.fmean(timings):.1f} | {percentile(timings, 0.95):.1f} |"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dataset = Path(argv[1])
    if dataset_truth(dataset) is None or not dataset_pages(dataset):
        print(f"{dataset}: needs html/*.html.gz and ground-truth.json", file=sys.stderr)
        return 1
    lines = [
        "## Extraction",
        "",
        f"Article bodies of {dataset.name}, scored with the benchmark's metric "
        "(word 4-gram shingles, per-page precision and recall averaged).",
        "",
        "| extractor | f1 | precision | recall | pages | ms/page avg | ms/page p95 |",
        "|---|---|---|---|---|---|---|",
        table_row("librarian (ingestion.extraction)", project_extractor, dataset),
        table_row("trafilatura 2.3.1 defaults", trafilatura_defaults, dataset),
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
