"""Analysis of an extracted article: screening, summary, tags, quality score and tier.

`analyze()` is the one entry point the pipeline calls. It screens the document,
then runs the configured provider (`local` or `openai`), falling back to the local
analyzer when the remote one fails and `LIBRARIAN_ANALYZER_FALLBACK` allows it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

# Bump when screening, scoring or tag hygiene change, so stored items can be re-analysed.
ANALYZER_VERSION = "1.0"

TIERS = ("tier-a", "tier-b", "tier-c", "tier-d")
PAYWALL_PENALTY = 2.0


@dataclass(frozen=True)
class Document:
    url: str
    title: str
    text: str
    markdown: str
    site: str = ""
    author: str = ""
    published: str | None = None
    language: str = ""
    description: str = ""
    html_length: int = 0


@dataclass(frozen=True)
class Analysis:
    summary: str
    tags: list[str]
    quality_score: float
    tier: str
    reasons: list[str]
    provider: str
    model: str
    prompt_version: str
    analyzer_version: str
    flags: list[str] = field(default_factory=list)


class AnalysisError(Exception):
    """A document that cannot (or should not) become a library item.

    `reason` is one of "too_short", "error_page", "captcha", "access_denied",
    "analysis_failed"; the pipeline records it as the job's typed error.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def tier_for_score(score: float, thresholds: Sequence[float] | None = None) -> str:
    """Map a 0–10 score to a tier: the first threshold it reaches, else tier-d."""
    limits = list(settings.LIBRARIAN_TIER_THRESHOLDS if thresholds is None else thresholds)
    if len(limits) != 3:
        raise ImproperlyConfigured("LIBRARIAN_TIER_THRESHOLDS needs three scores (A, B, C).")
    for tier, minimum in zip(TIERS, limits, strict=False):
        if score >= minimum:
            return tier
    return TIERS[-1]


def finish_score(score: float, reasons: list[str], flags: Sequence[str]) -> tuple[float, str]:
    """Clamp and round a provider's score, apply flag penalties, and pick the tier.

    Shared by every provider so a paywalled page lands in tier-d whoever scored it.
    """
    score = max(0.0, min(10.0, score))
    if "paywall" in flags:
        penalty = min(score, PAYWALL_PENALTY)
        reasons.append(f"-{penalty:.1f} paywall: only a teaser is readable (tier capped at D)")
        score -= penalty
    score = round(score, 1)
    tier = TIERS[-1] if "paywall" in flags else tier_for_score(score)
    return score, tier


def analyze(doc: Document, *, skip_screening: bool = False) -> Analysis:
    """Screen `doc`, then summarise, tag and score it with the configured provider.

    `skip_screening` turns off the checks that reject a page (too short, error page,
    captcha, access denied); a paywall is still flagged since it only lowers the tier.
    Raises AnalysisError with a typed reason.
    """
    # Imported here: the providers import this module's types.
    from library.analysis import local, screening

    flags = screening.detect_flags(doc) if skip_screening else screening.screen(doc)
    provider = settings.LIBRARIAN_ANALYZER
    if provider == "local":
        return local.analyze(doc, flags=flags)
    if provider != "openai":
        raise ImproperlyConfigured(
            f"LIBRARIAN_ANALYZER must be 'local' or 'openai', not {provider!r}."
        )

    # Imported lazily so the offline default never loads the SDK.
    from library.analysis import openai_provider

    try:
        return openai_provider.analyze(doc, flags=flags)
    except AnalysisError as exc:
        if not settings.LIBRARIAN_ANALYZER_FALLBACK:
            raise
        log.warning("LLM analysis failed for %s, using the local analyzer: %s", doc.url, exc)
        return local.analyze(doc, flags=[*flags, "llm_fallback"])
