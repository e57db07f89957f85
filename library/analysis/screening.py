"""Screening: reject pages that are not articles, flag pages that are only teasers.

Error pages, bot checks and "access denied" walls are short and say what they are
in the title or in the first lines, while a real article that merely mentions
"captcha" or "404" is long and mentions it rarely. So the title counts only when
the body is short, and body phrases count when the body is short or when they are
dense, never for a single mention in a long text.
"""

from __future__ import annotations

import re

from django.conf import settings

from library.analysis import AnalysisError, Document

# Chinese and Japanese run words together without spaces: count each character
# as a word there, or a long article would look like a handful of "words".
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:['’\-][^\W{_CJK}]+)*")
CJK_CHAR = re.compile(rf"[{_CJK}]")

# Below this many words a single marker phrase is enough to judge the body.
SHORT_BODY_WORDS = 150
# A title naming an error counts only for bodies shorter than this.
TITLE_BODY_WORDS = 300
# Body markers per 100 words that mark even a longer body.
MARKER_DENSITY = 1.0
# Interstitials are never this long; skipping the phrase scan keeps long articles fast.
BODY_CHECK_WORDS = 1000
# Paywall notices sit at the end of the teaser, sometimes before a footer.
PAYWALL_TAIL_CHARS = 1500

_TITLE_SEPARATORS = re.compile(r"\s+[|\-–—·:]\s+|\s*[|·]\s*|:\s+")


def _phrases(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def _segments(*patterns: str) -> re.Pattern[str]:
    """A title segment that is nothing but one of these phrases."""
    return re.compile(
        r"^\W*(?:" + "|".join(patterns) + r")\W*$",
        re.IGNORECASE,
    )


# kind -> (title segment pattern, body phrase pattern); checked in this order, since a
# bot check often also says "access denied" and both may carry an error status.
_CHECKS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "captcha": (
        _segments(
            r"just a moment\W*",
            r"attention required\W*",
            r"are you (?:a )?(?:robot|human)\W*",
            r"(?:security|bot|browser|human) (?:check|verification)",
            r"verify(?:ing)? (?:that )?you are (?:a )?human",
            r"(?:re)?captcha",
            r"one more step",
            r"ddos-guard",
            r"checking your browser\W*",
        ),
        _phrases(
            r"verify(?:ing)? (?:that )?you are (?:a )?human",
            r"are you a robot",
            r"i(?:'m|’m| am) not a robot",
            r"checking (?:if the site connection is secure|your browser)",
            r"cf[-_]chl|cf-challenge|challenge-platform",
            r"g-recaptcha|h-?captcha",
            r"complete the security check",
            r"press (?:&|and) hold",
            r"unusual traffic from your (?:computer|network)",
            r"enable javascript and cookies to continue",
            r"needs to review the security of your connection",
            r"ddos protection by",
            r"(?:complete|solve) the captcha",
            r"prove (?:that )?you(?:'re|’re| are) (?:not a robot|human)",
        ),
    ),
    "access_denied": (
        _segments(
            r"access denied",
            r"(?:error )?403(?: forbidden)?",
            r"forbidden",
            r"(?:error )?401(?: unauthorized)?",
            r"you have been blocked",
            r"request blocked",
            r"access to this page has been denied\W*",
        ),
        _phrases(
            r"access (?:is )?denied",
            r"403 forbidden|error 403",
            r"you (?:don't|don’t|do not) have permission to access",
            r"you have been blocked",
            r"(?:this|your) request (?:was|has been) blocked",
            r"error 1020",
            r"your ip(?: address)? has been (?:blocked|banned)",
            r"the request could not be satisfied",
        ),
    ),
    "error_page": (
        _segments(
            r"(?:error )?(?:404|500|502|503|504)(?: error)?"
            r"(?: (?:page )?not found| internal server error| bad gateway"
            r"| service unavailable| gateway time-?out)?",
            r"(?:oops\W*)?(?:page|file|article|content|post|resource) not found",
            r"not found",
            r"(?:oops\W*)?something went wrong\W*",
            r"(?:internal )?server error",
            r"service (?:temporarily )?unavailable",
            r"bad gateway|gateway time-?out",
            r"page (?:does not|doesn't|doesn’t|could not|couldn't) (?:exist|be found)",
            r"error|oops\W*",
        ),
        _phrases(
            r"page not found",
            r"error 404|404 (?:error|not found)",
            r"the page you(?: are|'re|’re| were) looking for",
            r"this page (?:does not|doesn't|doesn’t|no longer) exists?",
            r"(?:page|url)(?: you requested)? (?:could not|couldn't|cannot|can't) be found",
            r"we (?:can't|can’t|cannot|couldn't|could not) find (?:that|the|this) page",
            r"something went wrong",
            r"internal server error|500 internal",
            r"service (?:is )?(?:temporarily )?unavailable",
        ),
    ),
}

_MESSAGES = {
    "captcha": "the page is a bot check (captcha), not the article",
    "access_denied": "the site refused access to the page",
    "error_page": "the page is an error page, not an article",
}

_PAYWALL = _phrases(
    r"subscribe (?:now )?to (?:continue|keep) reading",
    r"subscribe to read (?:the full|the rest|more)",
    r"to (?:continue|keep) reading,? (?:please )?(?:subscribe|sign in|log in|register)",
    r"already a (?:subscriber|member)\W",
    r"(?:this|the) (?:article|story|content|post) is (?:only )?(?:available )?"
    r"(?:exclusively )?(?:to|for) (?:paying )?(?:subscribers|members)",
    r"(?:for )?subscribers only",
    r"you(?:'ve|’ve| have) reached your (?:free )?(?:article|monthly|story) limit",
    r"you have \w+ free (?:articles?|stories) (?:left|remaining)",
    r"become a (?:member|subscriber) to (?:read|continue|unlock)",
    r"create a free account to (?:continue|keep) reading",
    r"(?:sign|log) in to (?:continue|keep) reading",
    r"unlock (?:this|the full) (?:article|story)",
    r"read the full (?:story|article) with a subscription",
    r"start your (?:free )?trial to (?:continue|read)",
)


def word_count(text: str) -> int:
    return len(WORD.findall(text))


def _body(doc: Document) -> str:
    return doc.text or doc.markdown


def _title_says(pattern: re.Pattern[str], title: str) -> bool:
    parts = [title, *_TITLE_SEPARATORS.split(title)]
    return any(pattern.match(p.strip()) for p in parts if p.strip())


def _body_says(pattern: re.Pattern[str], body: str, words: int) -> bool:
    if words >= BODY_CHECK_WORDS:
        return False
    hits = len(pattern.findall(body))
    if not hits:
        return False
    return words < SHORT_BODY_WORDS or hits * 100 / max(words, 1) >= MARKER_DENSITY


def _rejection(doc: Document, words: int) -> str | None:
    body = _body(doc)
    for kind, (_, phrases) in _CHECKS.items():
        if _body_says(phrases, body, words):
            return kind
    if words < TITLE_BODY_WORDS:
        for kind, (segments, _) in _CHECKS.items():
            if _title_says(segments, doc.title):
                return kind
    return None


def is_paywalled(doc: Document) -> bool:
    """A paywall notice at the end of the text.

    An article about paywalls may quote one in its middle; a teaser ends with it.
    """
    return bool(_PAYWALL.search(_body(doc)[-PAYWALL_TAIL_CHARS:]))


def detect_flags(doc: Document) -> list[str]:
    """Flags that lower a page's standing without rejecting it."""
    return ["paywall"] if is_paywalled(doc) else []


def screen(doc: Document) -> list[str]:
    """Raise AnalysisError for a page that is not an article; else return its flags."""
    words = word_count(_body(doc))
    kind = _rejection(doc, words)
    if kind:
        raise AnalysisError(kind, _MESSAGES[kind])
    flags = detect_flags(doc)
    minimum = settings.LIBRARIAN_MIN_WORDS
    if words < minimum:
        detail = "no text was extracted" if words == 0 else f"only {words} words"
        if "paywall" in flags:
            detail += ", behind a paywall"
        raise AnalysisError("too_short", f"{detail} (minimum {minimum})")
    return flags
