from __future__ import annotations

import dataclasses
import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from library.analysis import AnalysisError, Document, analyze, tier_for_score
from tests.library.pages import load_page


@pytest.fixture(autouse=True)
def _local_analyzer():
    with override_settings(
        LIBRARIAN_ANALYZER="local",
        LIBRARIAN_MIN_WORDS=80,
        LIBRARIAN_TIER_THRESHOLDS=[7.5, 5.5, 3.5],
        LIBRARIAN_MAX_TAGS=8,
        LIBRARIAN_TAG_VOCABULARY="",
    ):
        yield


def _sentences(summary: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", summary) if s]


def test_it_puts_a_long_structured_article_in_a_top_tier() -> None:
    doc = load_page("sqlite_wal.md")

    result = analyze(doc)

    assert result.tier in ("tier-a", "tier-b")
    assert result.quality_score >= 7.5
    assert result.provider == "local"
    assert result.flags == []
    assert any(r.startswith("+2.2 full article: 1,4") for r in result.reasons)
    assert any("8 headings" in r for r in result.reasons)
    assert any("metadata: title, author, date, site, description" in r for r in result.reasons)
    assert "sqlite" in result.tags
    assert "write-ahead log" in result.tags


def test_it_records_every_score_contribution_as_a_signed_reason() -> None:
    result = analyze(load_page("sqlite_wal.md"))

    points = [float(r.split(" ", 1)[0]) for r in result.reasons]
    assert all(re.match(r"^[+-]\d+\.\d [a-z]", r) for r in result.reasons)
    assert round(sum(points), 1) == result.quality_score


def test_it_summarises_with_a_few_sentences_from_the_article_in_reading_order() -> None:
    doc = load_page("sqlite_wal.md")

    summary = analyze(doc).summary

    sentences = _sentences(summary)
    assert 2 <= len(sentences) <= 4
    assert len(summary) <= 600
    positions = [doc.text.index(s) for s in sentences]
    assert positions == sorted(positions)


def test_it_scores_a_thin_page_well_below_a_full_article() -> None:
    thin = analyze(load_page("thin_note.md"))
    full = analyze(load_page("sqlite_wal.md"))

    assert thin.tier in ("tier-c", "tier-d")
    assert thin.quality_score <= full.quality_score - 4
    assert any(r.startswith("+0.3 very short") for r in thin.reasons)
    assert any("single block of text" in r for r in thin.reasons)


def test_it_rejects_an_error_page() -> None:
    with pytest.raises(AnalysisError) as caught:
        analyze(load_page("not_found.md"))

    assert caught.value.reason == "error_page"


def test_it_rejects_a_short_body_that_says_something_went_wrong() -> None:
    doc = Document(
        url="https://pages.example/broken",
        title="The Daily Ledger",
        text="Something went wrong. " * 3 + "Please try again in a few minutes.",
        markdown="",
    )

    with pytest.raises(AnalysisError) as caught:
        analyze(doc)

    assert caught.value.reason == "error_page"


def test_it_rejects_a_bot_check_page() -> None:
    with pytest.raises(AnalysisError) as caught:
        analyze(load_page("cloudflare_check.md"))

    assert caught.value.reason == "captcha"


def test_it_rejects_an_access_denied_page() -> None:
    with pytest.raises(AnalysisError) as caught:
        analyze(load_page("access_denied.md"))

    assert caught.value.reason == "access_denied"


def test_it_keeps_an_article_that_mentions_captchas_and_404s() -> None:
    doc = load_page("captcha_usability.md")
    for phrase in ("I'm not a robot", "verify you are human", "404"):
        assert phrase in doc.text

    result = analyze(doc)

    assert result.flags == []
    assert result.tier in ("tier-a", "tier-b")
    assert "captcha" in result.tags


def test_it_keeps_a_long_article_whose_title_names_an_error() -> None:
    doc = dataclasses.replace(load_page("sqlite_wal.md"), title="Page not found | Error 404")

    assert analyze(doc).tier in ("tier-a", "tier-b")


def test_it_flags_a_paywalled_teaser_and_caps_it_at_tier_d() -> None:
    result = analyze(load_page("paywalled_teaser.md"))

    assert result.flags == ["paywall"]
    assert result.tier == "tier-d"
    assert any(r.startswith("-2.0 paywall") for r in result.reasons)


def test_it_rejects_a_page_below_the_minimum_word_count() -> None:
    doc = Document(
        url="https://pages.example/short", title="Note", text="Short note. " * 20, markdown=""
    )

    with pytest.raises(AnalysisError) as caught:
        analyze(doc)

    assert caught.value.reason == "too_short"
    assert "40 words" in caught.value.message
    with override_settings(LIBRARIAN_MIN_WORDS=30):
        assert analyze(doc).tier == "tier-d"


def test_it_rejects_an_empty_page_as_too_short() -> None:
    doc = Document(url="https://pages.example/empty", title="", text="", markdown="")

    with pytest.raises(AnalysisError) as caught:
        analyze(doc)

    assert caught.value.reason == "too_short"


def test_it_analyses_a_rejected_page_when_screening_is_skipped() -> None:
    result = analyze(load_page("not_found.md"), skip_screening=True)

    assert result.tier == "tier-d"


def test_it_still_flags_a_paywall_when_screening_is_skipped() -> None:
    assert analyze(load_page("paywalled_teaser.md"), skip_screening=True).flags == ["paywall"]


def test_it_gives_the_same_analysis_every_time() -> None:
    doc = load_page("captcha_usability.md")

    assert analyze(doc) == analyze(doc)


def test_it_extracts_tags_with_the_articles_language() -> None:
    result = analyze(load_page("de_radverkehr.md"))

    assert "münster" in result.tags
    assert not {"und", "die", "der", "das", "mit"} & set(result.tags)
    assert result.summary.startswith("In Münster gibt es mehr Fahrräder als Einwohner.")


def test_it_maps_tags_onto_the_configured_vocabulary() -> None:
    vocabulary = "databases: sqlite, database, checkpoint; concurrency: reader, writer, locking"
    with override_settings(LIBRARIAN_TAG_VOCABULARY=vocabulary):
        result = analyze(load_page("sqlite_wal.md"))

    assert result.tags == ["databases", "concurrency"]


def test_it_caps_the_number_of_tags() -> None:
    with override_settings(LIBRARIAN_MAX_TAGS=3):
        assert len(analyze(load_page("sqlite_wal.md")).tags) == 3


def test_it_picks_the_tier_from_the_thresholds() -> None:
    assert tier_for_score(7.5) == "tier-a"
    assert tier_for_score(7.4) == "tier-b"
    assert tier_for_score(5.5) == "tier-b"
    assert tier_for_score(3.5) == "tier-c"
    assert tier_for_score(3.4) == "tier-d"
    assert tier_for_score(9.0, [9.5, 9.2, 9.1]) == "tier-d"
    with override_settings(LIBRARIAN_TIER_THRESHOLDS=[9.9, 9.8, 1.0]):
        assert analyze(load_page("sqlite_wal.md")).tier == "tier-c"


def test_it_refuses_thresholds_that_are_not_three_scores() -> None:
    with pytest.raises(ImproperlyConfigured):
        tier_for_score(5.0, [5.0])


def test_it_refuses_an_unknown_analyzer() -> None:
    with override_settings(LIBRARIAN_ANALYZER="magic"), pytest.raises(ImproperlyConfigured):
        analyze(load_page("sqlite_wal.md"))


def test_it_counts_chinese_text_by_characters_rather_than_spaces() -> None:
    text = (
        "SQLite 的预写日志模式让读取者和写入者可以同时工作。"
        "写入者不再直接覆盖数据库文件，而是把修改过的页面追加到一个单独的日志文件中。"
        "读取者在开始事务时记录日志的位置，因此总能看到一致的快照。"
        "检查点会定期把日志中的页面写回数据库文件，使日志可以从头开始重复使用。"
    )
    doc = Document(
        url="https://pages.example/wal-zh",
        title="预写日志",
        text=text,
        markdown=text,
        language="zh",
    )

    result = analyze(doc)

    assert result.summary.startswith("SQLite 的预写日志模式让读取者和写入者可以同时工作。")
    assert len(result.summary) > 60
    assert " " not in result.summary.removeprefix("SQLite ")
    assert any("words" in r and not r.startswith("+0.0") for r in result.reasons)
