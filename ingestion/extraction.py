"""Turn a fetched HTML page into the article it carries: body text, Markdown and metadata.

trafilatura does the heavy lifting (precision mode, with its readability/justext
fallbacks). Around it sit a few generic corrections, each measured on the article
extraction benchmark (`manage.py bench_extraction`, `make bench`):

- embedded social posts (tweets, Instagram posts) are lifted out of their widget
  wrappers, which trafilatura discards as boilerplate although readers see the quote
  as part of the article;
- the headline is metadata, so a body block repeating it is dropped, and so is a
  leading dateline ("November 20, 2019 - 11:28 AM");
- trailing calls to action ("Follow us on…", "Subscribe…", "Comments") are trimmed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree
from lxml.html import HtmlElement
from trafilatura import bare_extraction
from trafilatura.settings import Document
from trafilatura.utils import load_html
from trafilatura.xml import xmltotxt

# Social embeds whose text is the quoted post; their wrapper divs carry class names
# ("social-embed", "article-widget") that trafilatura prunes wholesale.
_EMBED_XPATH = etree.XPath(
    "//blockquote[contains(@class, 'twitter-tweet') or contains(@class, 'instagram-media')"
    " or contains(@class, 'tiktok-embed')]"
)
# Wrappers never replaced by an embed: climbing past them would lift the whole article.
_EMBED_STOP_TAGS = {"article", "body", "html", "main"}

_WORD = re.compile(r"\w+")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_BLANK_RUN = re.compile(r"\n\s*\n(?:\s*\n)+")
_CLOCK_OR_DATE = re.compile(r"\b\d{1,2}[:/.]\d{2}\b")
# Calls to action and page furniture that trail an article body.
_TRAILER = re.compile(
    r"^\W*(?:follow (?:us|him|her|them|the)\b|subscribe\b|sign up\b|get the latest"
    r"|like this (?:story|article)|share (?:this|it)\b|tell us what|comments?\W*$|tags?\W*$"
    r"|filed under|citation\b|click here|listen to|have a tip|more \w+ \w+: https?://)",
    re.IGNORECASE,
)
_TRAILER_MAX_WORDS = 40
_DATELINE_MAX_WORDS = 12
# How many leading blocks may hold a repeated headline (kickers and bylines come first).
_TITLE_SEARCH_BLOCKS = 3


@dataclass(frozen=True)
class Extracted:
    title: str
    author: str
    site: str
    published: str | None  # ISO date
    language: str
    description: str
    text: str  # plain text article body, paragraphs separated by blank lines
    markdown: str  # article body as Markdown
    word_count: int
    html_length: int  # length of the input HTML, for the text-to-boilerplate ratio


def extract_article(html: str, url: str | None = None) -> Extracted | None:
    """The article in `html`, or None when the page holds no article text."""
    if not html.strip():
        return None
    tree = load_html(html)
    if tree is None:
        return None
    _lift_embeds(tree)
    document = bare_extraction(
        tree,
        url=url,
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        include_formatting=True,
        include_links=False,
        output_format="markdown",
        with_metadata=True,
    )
    if not isinstance(document, Document) or document.body is None:
        return None
    title = _one_line(document.title)
    text = _paragraphs(_without_furniture(xmltotxt(document.body, False), title))
    if not text:
        return None
    return Extracted(
        title=title,
        author=_one_line(document.author),
        site=_one_line(document.sitename),
        published=document.date or None,
        language=_page_language(tree),
        description=_one_line(document.description),
        text=text,
        markdown=_tidy_markdown(_without_furniture(xmltotxt(document.body, True), title)),
        word_count=len(_WORD.findall(text)),
        html_length=len(html),
    )


def _lift_embeds(tree: HtmlElement) -> None:
    """Replace each social embed's wrapper with a plain blockquote of the post."""
    for quote in _EMBED_XPATH(tree):
        own_text = _squash(quote.text_content())
        top = quote
        for ancestor in quote.iterancestors():
            if ancestor.tag in _EMBED_STOP_TAGS or _squash(ancestor.text_content()) != own_text:
                break
            top = ancestor
        quote.attrib.clear()
        parent = top.getparent()
        if top is not quote and parent is not None:
            quote.tail = top.tail
            parent.replace(top, quote)


def _without_furniture(text: str, title: str) -> str:
    """`text` without a repeated headline, a leading dateline and trailing calls to action.

    Works on lines rather than on trafilatura's blocks: a block may hold several
    line-broken lines, of which only the dateline is furniture.
    """
    lines = text.splitlines()
    kept = [index for index, line in enumerate(lines) if _WORD.search(line)]
    wordy = set(kept)
    title_words = _WORD.findall(title.lower())
    for index in kept[:_TITLE_SEARCH_BLOCKS]:
        if _is_headline(_WORD.findall(lines[index].lower()), title_words):
            kept.remove(index)
            break
    if kept and _is_dateline(lines[kept[0]]):
        kept.pop(0)
    while kept and _is_trailer(lines[kept[-1]]):
        kept.pop()
    dropped = wordy.difference(kept)
    return "\n".join(line for index, line in enumerate(lines) if index not in dropped)


def _is_headline(words: list[str], title_words: list[str]) -> bool:
    # Near-equal rather than equal: the <title> often differs by a site suffix or a word.
    if not words or not title_words:
        return False
    known = set(title_words)
    overlap = sum(word in known for word in words) / len(words)
    return overlap >= 0.8 and 0.6 * len(title_words) <= len(words) <= 1.25 * len(title_words)


def _is_dateline(line: str) -> bool:
    return (
        len(_WORD.findall(line)) <= _DATELINE_MAX_WORDS
        and bool(_YEAR.search(line))
        and bool(_CLOCK_OR_DATE.search(line))
    )


def _is_trailer(line: str) -> bool:
    return len(_WORD.findall(line)) <= _TRAILER_MAX_WORDS and bool(_TRAILER.search(line))


def _paragraphs(text: str) -> str:
    return "\n\n".join(line.strip() for line in text.splitlines() if line.strip())


def _tidy_markdown(markdown: str) -> str:
    # Dropped lines leave runs of blank lines behind; Markdown needs only one.
    return _BLANK_RUN.sub("\n\n", markdown).strip()


def _page_language(tree: HtmlElement) -> str:
    # The primary subtag only ("en-GB" -> "en"): that is what the analysis keys on.
    declared = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
    return declared.strip().replace("_", "-").split("-")[0].lower()


def _one_line(value: str | None) -> str:
    return _squash(value or "")


def _squash(text: str) -> str:
    return " ".join(text.split())
