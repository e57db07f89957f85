"""Tag hygiene: one spelling per idea, whichever provider proposed the tags.

Tags are lowercase with single spaces ("machine learning"). Singular and plural
forms merge, stopword-only and numeric tags go, and when a curated vocabulary is
configured every tag is mapped onto it (tags it does not know are dropped).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from django.conf import settings

MAX_TAG_WORDS = 4
MAX_TAG_CHARS = 40

_STOPWORDS = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    even every few for from further get got had has have having he her here hers herself
    him himself his how however i if in into is it its itself just least less let like
    many may me might more most much must my myself new no nor not now of off on once one
    only or other our ours ourselves out over own per same she should so some such than
    that the their theirs them themselves then there these they this those though through
    thus to too under until up upon us use used using very via was we were what when where
    whether which while who whom whose why will with within without would yet you your
    yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORDS.split())

# Keep the characters that carry meaning in technical names: c++, c#, node.js, e-mail.
_JUNK = re.compile(r"[^\w\s+#.\-]")
_EDGE = re.compile(r"^[\s.\-]+|[\s.\-]+$")
_NUMBERISH = re.compile(r"^[\d.,:%\-+]+(?:st|nd|rd|th|s|k|m|bn)?$")
_NO_PLURAL_S = ("ss", "us", "is", "os", "as")


def singular(word: str) -> str:
    """English singular by simple suffix rules; good enough to merge tag variants."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(_NO_PLURAL_S):
        return word[:-1]
    return word


def clean_tag(raw: str) -> str:
    """Lowercase, strip punctuation and collapse whitespace; "" when nothing is left."""
    text = unicodedata.normalize("NFKC", raw).lower().replace("_", " ")
    text = _JUNK.sub(" ", text)
    words = [_EDGE.sub("", w) for w in text.split()]
    return " ".join(w for w in words if w)


def tag_key(tag: str) -> str:
    """The identity spellings of one tag share: hyphens as spaces, every word singular."""
    return " ".join(singular(w) for w in tag.replace("-", " ").split())


def _is_meaningful(tag: str) -> bool:
    words = tag.split()
    if not words or len(words) > MAX_TAG_WORDS or len(tag) > MAX_TAG_CHARS or len(tag) < 2:
        return False
    if all(w in STOPWORDS for w in words):
        return False
    return not all(_NUMBERISH.match(w) for w in words)


def _map_onto(tag: str, vocabulary: Mapping[str, str]) -> str | None:
    key = tag_key(tag)
    if key in vocabulary:
        return vocabulary[key]
    # "deep learning models" should still land on "deep learning": the longest
    # vocabulary phrase contained in the tag, on word boundaries.
    padded = f" {key} "
    found = [k for k in vocabulary if f" {k} " in padded]
    return vocabulary[max(found, key=len)] if found else None


def normalise_tags(
    raw: Iterable[str], *, vocabulary: Mapping[str, str] | None, max_tags: int
) -> list[str]:
    """Clean, merge and cap tags, keeping the order of relevance they arrived in.

    `vocabulary` maps `tag_key()` of each accepted spelling (synonyms included) to
    its canonical tag, as `load_vocabulary` builds it.
    """
    cleaned = [clean_tag(t) for t in raw if isinstance(t, str)]
    cleaned = [t for t in cleaned if _is_meaningful(t)]
    if vocabulary:
        cleaned = [m for m in (_map_onto(t, vocabulary) for t in cleaned) if m]

    counts = Counter(cleaned)
    best: dict[str, str] = {}  # key -> spelling; insertion order is relevance order
    for tag in cleaned:
        key = tag_key(tag)
        current = best.get(key)
        # Ties keep the first (most relevant) spelling.
        if current is None or counts[tag] > counts[current]:
            best[key] = tag
    return list(best.values())[: max(0, max_tags)]


def _parse_entries(entries: Iterable[str]) -> dict[str, str]:
    vocabulary: dict[str, str] = {}
    for entry in entries:
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        canonical_raw, _, synonyms = entry.partition(":")
        canonical = clean_tag(canonical_raw)
        if not canonical:
            continue
        for spelling in [canonical, *(clean_tag(s) for s in synonyms.split(","))]:
            if spelling:
                vocabulary.setdefault(tag_key(spelling), canonical)
    return vocabulary


def _is_file(value: str) -> bool:
    try:
        return Path(value).is_file()
    except OSError:  # an inline list too long to be a file name
        return False


def load_vocabulary(setting_value: str) -> dict[str, str]:
    """Build the curated vocabulary from `LIBRARIAN_TAG_VOCABULARY`.

    The value is a path to a file with one tag per line, optionally followed by
    synonyms (`machine learning: ml, deep learning`, `#` starts a comment), or an
    inline list: comma-separated tags (`python, databases`), or, to give synonyms
    inline, entries separated by semicolons (`machine learning: ml; python`).
    An empty value means no vocabulary.
    """
    value = setting_value.strip()
    if not value:
        return {}
    if "\n" in value:
        return _parse_entries(value.splitlines())
    if _is_file(value):
        return _parse_entries(Path(value).read_text(encoding="utf-8").splitlines())
    separator = ";" if ";" in value or ":" in value else ","
    return _parse_entries(value.split(separator))


@lru_cache(maxsize=8)
def _vocabulary_for(setting_value: str) -> dict[str, str]:
    return load_vocabulary(setting_value)


def configured_vocabulary() -> dict[str, str]:
    """The vocabulary `LIBRARIAN_TAG_VOCABULARY` names, read once per process."""
    return _vocabulary_for(settings.LIBRARIAN_TAG_VOCABULARY)
