"""Read bookmark exports: Netscape bookmark HTML or a plain list of URLs.

Browsers (Chrome, Firefox, Safari, Edge), Pocket, Karakeep, Pinboard and most
read-later services export the Netscape format: `<DT><A HREF=…>` entries inside
nested `<DL>` lists, each folder introduced by an `<H3>`. The folders an entry
sits in become its tags, together with any `TAGS="a,b"` attribute. A plain list
has one URL per line; blank lines and lines starting with `#` are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

# Top-level folders every browser creates: they say where a bookmark was shown,
# not what it is about, so they never become tags (folders inside them do).
ROOT_FOLDERS = frozenset(
    {
        "bookmarks",
        "bookmarks bar",
        "bookmarks toolbar",
        "bookmarks menu",
        "favorites",
        "favorites bar",
        "favourites bar",
        "imported",
        "menu",
        "mobile bookmarks",
        "other bookmarks",
        "toolbar",
        "unfiled",
        "unsorted bookmarks",
    }
)
ROOT_FOLDER_ATTRIBUTES = ("personal_toolbar_folder", "unfiled_bookmarks_folder")
FETCHABLE_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class Bookmark:
    url: str
    title: str = ""
    tags: tuple[str, ...] = ()


@dataclass
class BookmarkFile:
    """What a file held: the bookmarks to import and the entries that cannot be fetched."""

    bookmarks: list[Bookmark] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _fetchable(url: str) -> bool:
    return url.lower().startswith(FETCHABLE_SCHEMES)


def _split_tags(raw: str | None) -> list[str]:
    return [t.strip() for t in (raw or "").split(",") if t.strip()]


class _NetscapeParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found = BookmarkFile()
        # One entry per open <DL>: the folder it belongs to (None for a root).
        self.folders: list[str | None] = []
        self.pending_folder: str | None = None
        self.pending_is_root = False
        self.heading: list[str] | None = None
        self.heading_is_root = False
        self.link: dict[str, str | None] | None = None
        self.link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name.lower(): value for name, value in attrs}
        if tag == "h3":
            self.heading = []
            self.heading_is_root = any(
                (attributes.get(a) or "").lower() == "true" for a in ROOT_FOLDER_ATTRIBUTES
            )
        elif tag in ("dl", "ul"):
            folder = self.pending_folder
            if folder is not None and (
                self.pending_is_root or (not self.open_folders() and folder.lower() in ROOT_FOLDERS)
            ):
                folder = None
            self.folders.append(folder)
            self.pending_folder = None
        elif tag == "a":
            self.link = attributes
            self.link_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3" and self.heading is not None:
            self.pending_folder = " ".join("".join(self.heading).split()) or None
            self.pending_is_root = self.heading_is_root
            self.heading = None
        elif tag in ("dl", "ul") and self.folders:
            self.folders.pop()
        elif tag == "a" and self.link is not None:
            self._add_link(self.link, " ".join("".join(self.link_text).split()))
            self.link = None

    def handle_data(self, data: str) -> None:
        if self.heading is not None:
            self.heading.append(data)
        elif self.link is not None:
            self.link_text.append(data)

    def open_folders(self) -> list[str]:
        return [f for f in self.folders if f]

    def _add_link(self, attributes: dict[str, str | None], title: str) -> None:
        url = (attributes.get("href") or "").strip()
        if not url:
            return
        if not _fetchable(url):
            self.found.skipped.append(url)
            return
        tags = [*self.open_folders(), *_split_tags(attributes.get("tags"))]
        self.found.bookmarks.append(Bookmark(url=url, title=title, tags=tuple(dict.fromkeys(tags))))


def looks_like_html(text: str) -> bool:
    head = text[:4096].lower()
    return "<!doctype netscape" in head or "<a " in head or "<dl" in head or "<html" in head


def parse_html(text: str) -> BookmarkFile:
    parser = _NetscapeParser()
    parser.feed(text)
    parser.close()
    return parser.found


def parse_url_list(text: str) -> BookmarkFile:
    found = BookmarkFile()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        url = line.split()[0]
        if _fetchable(url):
            found.bookmarks.append(Bookmark(url=url))
        else:
            found.skipped.append(url)
    return found


def parse_bookmarks(text: str) -> BookmarkFile:
    """Bookmarks from either format, in file order (repeats kept: the caller dedupes)."""
    if looks_like_html(text):
        return parse_html(text)
    return parse_url_list(text)
