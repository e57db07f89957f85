"""The offline analyzer: extractive summary, yake tags and an explainable quality score.

Everything here is deterministic and needs no network, so it is both the default
analyzer and the fallback when a remote model fails. Every score contribution is
recorded as a human-readable reason.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import yake
from django.conf import settings

from library.analysis import ANALYZER_VERSION, Analysis, Document, finish_score
from library.analysis.screening import CJK_CHAR, WORD
from library.analysis.tags import (
    STOPWORDS,
    clean_tag,
    configured_vocabulary,
    normalise_tags,
    tag_key,
)

MODEL = "extractive+yake"
SUMMARY_MAX_CHARS = 600
SUMMARY_MAX_SENTENCES = 4
# yake's cost grows with the text; the lead of an article names its topics anyway.
TAG_WINDOW_WORDS = 600
# Words too vague to be a tag, or to end one ("decade ago", "left side").
_VAGUE = """
    ago today yesterday tomorrow morning evening night week weeks month months year years
    decade day days time times monday tuesday wednesday thursday friday saturday sunday
    people user users thing things way ways lot lots part parts side example examples
    page pages file files text image main number case problem result article post
    question human humans
"""
VAGUE_WORDS = frozenset(_VAGUE.split())
# Readability and diversity are noisy on little text, so they count fully from here.
CONFIDENT_WORDS = 400
MATTR_WINDOW = 100

# Sentence ends, except after common abbreviations and initials; CJK full stops
# end a sentence without a following space.
_SENTENCE_END = re.compile(
    r"(?<=[.!?…])(?<!\b[A-Z]\.)(?<!\b(?:Mr|Ms|Dr|St|vs|Jr|Sr|Mt|No)\.)"
    r"(?<!\be\.g\.)(?<!\bi\.e\.)[\"'”’)\]]*\s+|(?<=[。！？])[”」』]?\s*"
)
_CJK_STOP = ("。", "！", "？", "”", "」", "』")
_FULL_STOP = re.compile(r"[.!。！…][\"'”’)\]]*$")
_DANGLING_WORDS = """
    this that these those they it its he she his her their them but and or so also then
    however meanwhile instead still yet therefore thus
"""
_DANGLING = frozenset(_DANGLING_WORDS.split())
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_MD_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
_MD_QUOTE = re.compile(r"^\s{0,3}>\s*\S", re.MULTILINE)
_MD_FENCE = re.compile(r"^\s*(?:```|~~~)", re.MULTILINE)
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_BOILERPLATE = re.compile(
    r"accept (?:all )?cookies|cookie (?:policy|settings|preferences)|all rights reserved"
    r"|(?:sign up|subscribe) (?:for|to) our newsletter|share (?:this|on) (?:facebook|twitter|x|"
    r"linkedin)|follow us on|click here|^advertisement$|related (?:articles|posts|stories)"
    r"|you may also like",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class _Text:
    """The measurements shared by the summary and the score."""

    words: list[str]
    blocks: list[str]
    sentences: list[str]


def _split_sentences(block: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(block) if s.strip()]


def _measure(doc: Document) -> _Text:
    body = doc.text or doc.markdown
    blocks = [b.strip() for b in re.split(r"\n+", body) if b.strip()]
    sentences = [s for b in blocks for s in _split_sentences(b)]
    return _Text(words=WORD.findall(body), blocks=blocks, sentences=sentences)


def _language(doc: Document) -> str:
    code = (doc.language or "en")[:2].lower()
    return {"cs": "cz"}.get(code, code)  # yake names Czech "cz"


@lru_cache(maxsize=32)
def _stopwords(language: str) -> frozenset[str]:
    return frozenset(yake.KeywordExtractor(lan=language).stopword_set) | STOPWORDS


# --- summary -----------------------------------------------------------------


def summarise(text: _Text, title: str, language: str) -> str:
    """The 2–4 most central sentences (word-frequency centroid), in reading order."""
    stop = _stopwords(language)

    def content(sentence: str) -> list[str]:
        # Short words are mostly function words, except in CJK where a word is a character.
        words = (x.lower() for x in WORD.findall(sentence))
        return [w for w in words if w not in stop and (len(w) > 2 or CJK_CHAR.match(w))]

    freq = Counter(w for s in text.sentences for w in content(s))
    if not freq:
        return _clip(_join(text.sentences[:2]))
    top = max(freq.values())
    title_words = set(content(title))
    total = len(text.sentences)
    candidates: list[tuple[int, float, float]] = []  # index, centrality, other points
    for index, sentence in enumerate(text.sentences):
        words = content(sentence)
        length = len(WORD.findall(sentence))
        # Headings, captions, fragments and run-ons make poor summaries; questions rarely
        # summarise; a sentence that leans on the previous one reads badly out of context.
        if not words or length < 6 or length > 60 or not _FULL_STOP.search(sentence):
            continue
        centrality = sum(freq[w] for w in words) / (top * len(words) ** 0.5)
        lead = 0.4 * (1 - index / total) + (0.3 if index < 3 else 0.0)
        in_title = 0.2 * len(title_words.intersection(words)) / (len(title_words) or 1)
        dangling = 0.5 if sentence.split(maxsplit=1)[0].strip(",;:").lower() in _DANGLING else 0.0
        candidates.append((index, centrality, lead + in_title - dangling))
    if not candidates:
        return _clip(_join(text.sentences[:2]))
    # Centrality scaled to 0–1 so the position and title bonuses weigh the same in any text.
    best = max(c for _, c, _ in candidates) or 1.0
    scored = [(c / best + other, index) for index, c, other in candidates]

    chosen: list[int] = []
    size = 0
    for _, index in sorted(scored, key=lambda item: (-item[0], item[1])):
        sentence = text.sentences[index]
        if len(chosen) >= SUMMARY_MAX_SENTENCES:
            break
        if chosen and size + len(sentence) + 1 > SUMMARY_MAX_CHARS:
            continue
        if any(_overlap(sentence, text.sentences[i]) > 0.6 for i in chosen):
            continue
        chosen.append(index)
        size += len(sentence) + 1
    return _clip(_join([text.sentences[i] for i in sorted(chosen)]))


def _join(sentences: list[str]) -> str:
    out = ""
    for sentence in sentences:
        out += sentence if not out or out.endswith(_CJK_STOP) else " " + sentence
    return out


def _overlap(a: str, b: str) -> float:
    wa, wb = set(WORD.findall(a.lower())), set(WORD.findall(b.lower()))
    return len(wa & wb) / (min(len(wa), len(wb)) or 1)


def _clip(summary: str) -> str:
    if len(summary) <= SUMMARY_MAX_CHARS:
        return summary
    return summary[: SUMMARY_MAX_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


# --- tags --------------------------------------------------------------------


def _sentence(line: str) -> str:
    # A title without a full stop would run into the next line as one yake sentence.
    line = line.strip()
    return line if not line or line.endswith((".", "!", "?")) else line + "."


def extract_tags(doc: Document, text: _Text, max_tags: int) -> list[str]:
    """yake keyphrases from the title, description and lead, reranked and cleaned."""
    lines = [_sentence(doc.title), _sentence(doc.description)]
    budget = TAG_WINDOW_WORDS
    for block in text.blocks:
        if budget <= 0:
            break
        lines.append(_sentence(block))
        budget -= len(block.split())
    extractor = yake.KeywordExtractor(lan=_language(doc), n=2, top=max_tags * 3, dedup_lim=0.7)
    candidates = extractor.extract_keywords("\n".join(x for x in lines if x))

    title = f" {clean_tag(doc.title)} "
    body = (doc.text or doc.markdown).lower()
    ranked: list[tuple[float, str]] = []
    for phrase, weight in candidates:
        tag = clean_tag(phrase)
        if not tag or tag_key(tag).split()[-1] in VAGUE_WORDS:
            continue
        # yake: lower is better. A title phrase the body keeps returning to is the topic;
        # a title word the body never repeats is just a word in a headline.
        topical = f" {tag} " in title and body.count(tag) >= 2
        ranked.append((float(weight) * (0.5 if topical else 1.0), phrase))
    ranked.sort(key=lambda item: item[0])

    kept: list[str] = []
    seen: list[set[str]] = []
    for _, phrase in ranked:
        words = set(tag_key(clean_tag(phrase)).split())
        # "write-ahead" adds nothing once "write-ahead log" is in.
        if any(words <= other for other in seen):
            continue
        kept.append(phrase)
        seen.append(words)
    return normalise_tags(kept, vocabulary=configured_vocabulary(), max_tags=max_tags)


# --- quality score ------------------------------------------------------------


def _step(
    value: float, steps: Sequence[tuple[float, float, str]], last: tuple[float, str]
) -> tuple[float, str]:
    """The points and label of the first step whose upper bound `value` is below."""
    for bound, points, label in steps:
        if value < bound:
            return points, label
    return last


def _reason(points: float, label: str, detail: str) -> str:
    return f"{points:+.1f} {label}: {detail}"


def _mattr(words: list[str]) -> float:
    """Moving-average type-token ratio: lexical diversity that does not fall with length."""
    tokens = [w.lower() for w in words]
    if len(tokens) <= MATTR_WINDOW:
        return len(set(tokens)) / (len(tokens) or 1)
    window = Counter(tokens[:MATTR_WINDOW])
    total = len(window)
    for i in range(MATTR_WINDOW, len(tokens)):
        window[tokens[i]] += 1
        old = tokens[i - MATTR_WINDOW]
        window[old] -= 1
        if not window[old]:
            del window[old]
        total += len(window)
    return total / ((len(tokens) - MATTR_WINDOW + 1) * MATTR_WINDOW)


def score(doc: Document, text: _Text) -> tuple[float, list[str]]:
    """Sum the measurable features into a 0–10 score, one reason per feature."""
    reasons: list[str] = []
    n = len(text.words)

    points, label = _step(
        n,
        [(200, 0.3, "very short"), (400, 0.9, "short"), (800, 1.6, "medium length"),
         (1500, 2.2, "full article"), (2500, 2.6, "long-form")],
        (3.0, "long-form"),
    )  # fmt: skip
    reasons.append(_reason(points, label, f"{n:,} words"))
    total = points

    paragraphs = [b for b in text.blocks if len(WORD.findall(b)) >= 20]
    points, label = _step(
        len(paragraphs),
        [(2, 0.0, "single block of text"), (3, 0.3, "few paragraphs"), (5, 0.6, "paragraphs")],
        (1.0, "well paragraphed"),
    )
    reasons.append(_reason(points, label, f"{len(paragraphs)} paragraphs"))
    total += points

    headings = len(_MD_HEADING.findall(doc.markdown))
    points, label = _step(
        headings, [(1, 0.0, "no section headings"), (3, 0.4, "headings")], (0.8, "sectioned")
    )
    reasons.append(_reason(points, label, f"{headings} headings"))
    total += points

    items, quotes, fences = (
        len(_MD_LIST_ITEM.findall(doc.markdown)),
        len(_MD_QUOTE.findall(doc.markdown)),
        len(_MD_FENCE.findall(doc.markdown)) // 2,
    )
    if items >= 2 or quotes or fences:
        detail = f"{items} list items, {fences} code blocks, {quotes} quotes"
        reasons.append(_reason(0.5, "lists, code or quotes", detail))
        total += 0.5

    if doc.html_length > 0:
        ratio = len(doc.text) / doc.html_length
        points, label = _step(
            ratio,
            [
                (0.015, -0.5, "boilerplate-heavy page"),
                (0.04, 0.3, "heavy page markup"),
                (0.10, 0.7, "lean page"),
            ],
            (1.0, "clean page"),
        )
        reasons.append(_reason(points, label, f"text is {ratio:.1%} of the HTML"))
    else:
        points = 0.5
        reasons.append(_reason(points, "text-to-HTML ratio unknown", "neutral"))
    total += points

    fields = {
        "title": (doc.title, 0.3),
        "author": (doc.author, 0.2),
        "date": (doc.published, 0.2),
        "site": (doc.site, 0.2),
        "description": (doc.description, 0.1),
    }
    present = [name for name, (value, _) in fields.items() if value]
    missing = [name for name in fields if name not in present]
    points = sum(fields[name][1] for name in present)
    detail = ", ".join(present) or "none"
    reasons.append(
        _reason(
            points, "metadata", detail + (f" (missing {', '.join(missing)})" if missing else "")
        )
    )
    total += points

    confidence = min(1.0, n / CONFIDENT_WORDS)
    per_sentence = n / (len(text.sentences) or 1)
    letters = sum(len(w) for w in text.words) / (n or 1)
    sentence_points, _ = _step(
        abs(per_sentence - 17.5), [(7.6, 0.8, ""), (14.6, 0.4, "")], (-0.4, "")
    )
    letter_points, _ = _step(abs(letters - 5.25), [(1.26, 0.7, ""), (2.26, 0.3, "")], (-0.3, ""))
    points = round((sentence_points + letter_points) * confidence, 1)
    label = "readable" if points >= 1.0 else "readability fair" if points > 0 else "hard to read"
    reasons.append(
        _reason(points, label, f"{per_sentence:.1f} words/sentence, {letters:.1f} letters/word")
    )
    total += points

    diversity = _mattr(text.words)
    points, label = _step(
        diversity,
        [
            (0.48, -0.5, "repetitive wording"),
            (0.58, 0.0, "plain vocabulary"),
            (0.68, 0.5, "varied vocabulary"),
        ],
        (1.0, "rich vocabulary"),
    )
    points = round(points * confidence, 1)
    reasons.append(_reason(points, label, f"lexical diversity {diversity:.2f}"))
    total += points

    total += _noise(doc, text, reasons)
    return total, reasons


def _noise(doc: Document, text: _Text, reasons: list[str]) -> float:
    """Penalties for link lists, menu fragments and boilerplate that survived extraction."""
    n = len(text.words) or 1
    penalty = 0.0
    link_words = sum(len(WORD.findall(m)) for m in _MD_LINK.findall(doc.markdown))
    share = link_words / n
    if share >= 0.2:
        points = -1.5 if share >= 0.35 else -0.7
        reasons.append(_reason(points, "link-heavy", f"{share:.0%} of words are link text"))
        penalty += points
    headings = len(_MD_HEADING.findall(doc.markdown))
    fragments = max(0, sum(1 for b in text.blocks if len(WORD.findall(b)) < 4) - headings)
    share = fragments / (len(text.blocks) or 1)
    if len(text.blocks) >= 10 and share >= 0.25:
        points = -1.0 if share >= 0.4 else -0.5
        reasons.append(_reason(points, "fragmented", f"{share:.0%} of lines are fragments"))
        penalty += points
    boilerplate = len(_BOILERPLATE.findall(doc.text or doc.markdown))
    if boilerplate:
        points = -0.8 if boilerplate >= 3 else -0.3
        reasons.append(_reason(points, "boilerplate", f"{boilerplate} phrases like 'click here'"))
        penalty += points
    if not penalty:
        reasons.append(_reason(0.0, "no noise", "no link lists, fragments or boilerplate"))
    return penalty


def analyze(doc: Document, *, flags: Sequence[str] = ()) -> Analysis:
    """Analyse `doc` offline; `flags` come from screening and may cap the tier."""
    text = _measure(doc)
    raw_score, reasons = score(doc, text)
    final_score, tier = finish_score(raw_score, reasons, flags)
    return Analysis(
        summary=summarise(text, doc.title, _language(doc)),
        tags=extract_tags(doc, text, settings.LIBRARIAN_MAX_TAGS),
        quality_score=final_score,
        tier=tier,
        reasons=reasons,
        provider="local",
        model=MODEL,
        prompt_version="",
        analyzer_version=ANALYZER_VERSION,
        flags=list(flags),
    )
