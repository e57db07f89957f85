"""The article extraction benchmark: its metric and a runner over a dataset folder.

The metric: word 4-gram shingles per page, precision and recall averaged over pages,
F1 of the two averages. Same numbers as the benchmark's own score.py, so a run in
the project compares with published results. A dataset folder holds
`html/<key>.html.gz` and, optionally, `ground-truth.json` (`{key: {"articleBody": …}}`).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from trafilatura.utils import decode_file

_WORD = re.compile(r"\w+", re.UNICODE)
_SHINGLE = 4

Shingles = Counter[tuple[str, ...]]


class Score(NamedTuple):
    f1: float
    precision: float
    recall: float


def shingles(text: str | None, n: int = _SHINGLE) -> Shingles:
    """Word n-grams of `text`; a text shorter than n words is one shingle."""
    words = _WORD.findall(text or "")
    if len(words) < n:
        return Counter([tuple(words)] if words else [])
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def page_counts(true: str | None, predicted: str | None) -> tuple[float, float, float]:
    """True positives, false positives and false negatives of one page, as shares of their sum."""
    expected, found = shingles(true), shingles(predicted)
    tp = sum((expected & found).values())
    fp = sum((found - expected).values())
    fn = sum((expected - found).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def score(truth: Mapping[str, str], predictions: Mapping[str, str]) -> Score:
    """Score predicted article bodies against the true ones, both keyed by page.

    Raises KeyError when a page of `truth` has no prediction, as the benchmark refuses
    to score a partial run.
    """
    missing = set(truth) - set(predictions)
    if missing:
        raise KeyError(f"predictions lack {len(missing)} pages, e.g. {sorted(missing)[0]}")
    precisions: list[float] = []
    recalls: list[float] = []
    for key, body in truth.items():
        tp, fp, fn = page_counts(body, predictions[key])
        # A page with nothing predicted has no precision; one with nothing true, no recall.
        if tp + fp > 0:
            precisions.append(tp / (tp + fp))
        if tp + fn > 0:
            recalls.append(tp / (tp + fn))
    precision = sum(precisions) / len(precisions) if precisions else 0.0
    recall = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(f1, precision, recall)


class PageResult(NamedTuple):
    key: str
    text: str
    seconds: float


def dataset_pages(dataset: Path) -> list[Path]:
    """The dataset's gzipped pages, sorted by key so every run sees the same order."""
    return sorted((dataset / "html").glob("*.html.gz"))


def page_key(path: Path) -> str:
    return path.name.removesuffix(".html.gz")


def dataset_truth(dataset: Path) -> dict[str, str] | None:
    """True article bodies by page key, or None when the dataset has no ground truth."""
    path = dataset / "ground-truth.json"
    if not path.is_file():
        return None
    pages = json.loads(path.read_text(encoding="utf-8"))
    return {key: page.get("articleBody", "") for key, page in pages.items()}


def run_pages(pages: Iterable[Path], extract: Callable[[str], str]) -> Iterator[PageResult]:
    """Extract each page, timing the extraction alone (not the reading or decoding)."""
    for path in pages:
        # Decoded the way the fetcher decodes a body: declared charset, then guesses.
        html = decode_file(gzip.decompress(path.read_bytes()))
        started = time.perf_counter()
        text = extract(html)
        yield PageResult(page_key(path), text, time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value at or above `share` of the values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
