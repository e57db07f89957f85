"""Article pages written for the analysis tests, loaded as extracted documents.

Each file is Markdown with a YAML header holding the metadata the extractor
would have found; the plain text is derived the way the extractor renders it
(one line per block, no Markdown syntax).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from library.analysis import Document

PAGES = Path(__file__).parent


def plain_text(markdown: str) -> str:
    text = re.sub(r"^\s*(?:```|~~~).*$", "", markdown, flags=re.MULTILINE)
    text = re.sub(r"^\s{0,3}#{1,6}\s+", "", text, flags=re.MULTILINE)
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", text, flags=re.MULTILINE)
    text = re.sub(r"^\s{0,3}>\s*", "", text, flags=re.MULTILINE)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.replace("**", "").replace("`", "")
    return re.sub(r"\n\s*\n+", "\n", text).strip()


def load_page(name: str) -> Document:
    raw = (PAGES / name).read_text(encoding="utf-8")
    _, header, markdown = raw.split("---\n", 2)
    meta = yaml.safe_load(header)
    markdown = markdown.strip()
    return Document(
        url=f"https://pages.example/{name.removesuffix('.md')}",
        title=meta.get("title", ""),
        text=plain_text(markdown),
        markdown=markdown,
        site=meta.get("site", ""),
        author=meta.get("author", ""),
        published=meta.get("published"),
        language=meta.get("language", ""),
        description=meta.get("description", ""),
        html_length=meta.get("html_length", 0),
    )
