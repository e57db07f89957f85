"""Re-run the analysis of a stored item on its stored body (no fetching).

Used after the analyzer, its prompt or the tier thresholds change. The new
summary, tags, score and tier go through the library's services, so a tier
change moves the Markdown file, and a storage failure changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from library import services
from library.models import LibraryItem

# Markdown markup that is not words: images, link targets, emphasis, headings, fences.
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MARKS = re.compile(r"(^|\s)[#>*+-]+\s|[*_`~]+", re.MULTILINE)


@dataclass(frozen=True)
class StoredArticle:
    """The item's stored text in the shape `services.analyze_article` reads."""

    title: str
    text: str
    markdown: str
    site: str
    author: str
    published: str | None
    language: str
    description: str
    html_length: int
    word_count: int


@dataclass(frozen=True)
class Reanalysed:
    item: LibraryItem
    old_tier: str
    old_score: float

    @property
    def moved(self) -> bool:
        return self.item.tier != self.old_tier


def plain_text(markdown: str) -> str:
    text = _IMAGE.sub(r"\1", markdown)
    text = _LINK.sub(r"\1", text)
    return _MARKS.sub(r"\1", text).strip()


def stored_article(item: LibraryItem) -> StoredArticle:
    text = plain_text(item.body)
    return StoredArticle(
        title=item.title,
        text=text,
        markdown=item.body,
        site=item.site,
        author=item.author,
        published=item.published or None,
        language=item.language,
        description=item.description,
        # The page itself is gone; its article text is the best stand-in for the
        # text-to-page ratio that screening looks at.
        html_length=len(item.body),
        word_count=item.word_count or len(text.split()),
    )


def reanalyze_item(item: LibraryItem, *, skip_screening: bool = True) -> Reanalysed:
    """Analyse `item` again and store the outcome; raises AnalysisFailed or StorageFailed.

    Screening is skipped by default: the item was accepted once, and re-analysis
    should re-score it, not reject it.
    """
    analysis: Any = services.analyze_article(
        url=item.url, article=stored_article(item), skip_screening=skip_screening
    )
    old_tier, old_score = item.tier, item.quality_score
    try:
        _store(item, analysis)
    except Exception:
        item.refresh_from_db()  # the row was rolled back: drop the in-memory edits too
        raise
    item.refresh_from_db()
    return Reanalysed(item=item, old_tier=old_tier, old_score=old_score)


def _store(item: LibraryItem, analysis: Any) -> None:
    """The new fields and tags in the row, then one storage step that writes the file.

    All inside one transaction: if storage fails it rolls back, and the service
    has left the old file where it was.
    """
    fields = {
        "summary": analysis.summary,
        "quality_score": analysis.quality_score,
        "quality_reasons": list(analysis.reasons),
        "flags": list(analysis.flags),
        "analyzer": analysis.provider,
        "analyzer_model": analysis.model,
        "analyzer_version": analysis.analyzer_version,
        "prompt_version": analysis.prompt_version,
    }
    with transaction.atomic():
        for name, value in fields.items():
            setattr(item, name, value)
        LibraryItem.objects.filter(pk=item.pk).update(**fields)
        if analysis.tier != item.tier:
            services.set_tags(item, analysis.tags)
            services.item_set_tier(item, analysis.tier)
            return
        try:
            services.item_set_tags(item, analysis.tags)
        except OSError as exc:
            raise services.StorageFailed(f"could not rewrite {item.file_path}: {exc}") from exc
