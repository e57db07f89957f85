"""`manage.py bench_extraction --dataset DIR [--out FILE]`: run the article extractor
over a benchmark folder and, when it has ground truth, print the benchmark's score."""

from __future__ import annotations

import json
import statistics
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ingestion.extraction import extract_article
from ingestion.extraction_score import (
    dataset_pages,
    dataset_truth,
    percentile,
    run_pages,
    score,
)


def article_text(html: str) -> str:
    article = extract_article(html)
    return article.text if article else ""


class Command(BaseCommand):
    help = "Extract every page of an article extraction dataset and score the result."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dataset", required=True, type=Path, help="folder with html/*.html.gz"
        )
        parser.add_argument("--out", type=Path, help='write {key: {"articleBody": text}} here')

    def handle(self, *args: Any, **options: Any) -> None:
        dataset: Path = options["dataset"]
        out: Path | None = options["out"]
        if not dataset.is_dir():
            raise CommandError(f"no dataset folder at {dataset}")
        pages = dataset_pages(dataset)
        if not pages:
            raise CommandError(f"no html/*.html.gz pages in {dataset}")

        predictions: dict[str, str] = {}
        timings: list[float] = []
        progress = tqdm(run_pages(pages, article_text), total=len(pages), unit="page")
        for page in progress:
            predictions[page.key] = page.text
            timings.append(page.seconds * 1000)

        if out is not None:
            bodies = {key: {"articleBody": text} for key, text in predictions.items()}
            out.write_text(json.dumps(bodies, ensure_ascii=False, indent=1), encoding="utf-8")
        truth = dataset_truth(dataset)
        if truth is not None:
            try:
                result = score(truth, predictions)
            except KeyError as error:
                raise CommandError(str(error.args[0])) from error
            self.stdout.write(
                f"f1={result.f1:.3f} precision={result.precision:.3f} recall={result.recall:.3f}"
            )
        self.stdout.write(
            f"pages={len(pages)} ms/page avg={statistics.fmean(timings):.1f}"
            f" p95={percentile(timings, 0.95):.1f}"
        )
