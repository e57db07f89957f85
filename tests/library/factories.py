"""Library items made through the real store service (file + row + chunks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from library import services
from library.models import LibraryItem


@dataclass(frozen=True)
class FakeArticle:
    title: str
    text: str
    markdown: str = ""
    author: str = "Ada"
    site: str = "Example"
    published: str | None = "2025-01-02"
    language: str = "en"
    description: str = ""
    html_length: int = 5000
    word_count: int = 500


@dataclass(frozen=True)
class GivenAnalysis:
    tier: str
    quality_score: float
    tags: list[str] = field(default_factory=list)
    summary: str = "A summary."
    reasons: list[str] = field(default_factory=lambda: ["+1 given"])
    flags: list[str] = field(default_factory=list)
    provider: str = "given"
    model: str = ""
    analyzer_version: str = "1"
    prompt_version: str = ""


def make_item(
    title: str,
    *,
    tier: str = "tier-b",
    score: float = 6.0,
    tags: list[str] | None = None,
    url: str | None = None,
    text: str | None = None,
) -> LibraryItem:
    body = text or f"{title}. " + " ".join(f"word{i}" for i in range(60))
    embedded = services.Embedded(
        chunks=[body],
        vectors=np.ones((1, 4), np.float32) / 2,
        embedder="test",
        embedder_version="1",
    )
    stored = services.item_store(
        url=url or f"https://example.com/{title.lower().replace(' ', '-')}",
        article=FakeArticle(title=title, text=body, markdown=body),
        analysis=GivenAnalysis(tier=tier, quality_score=score, tags=tags or []),
        embedded=embedded,
    )
    return stored.item
