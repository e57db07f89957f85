"""Bookmark exports are read into URLs with their folders as tags."""

from __future__ import annotations

from library.bookmarks import Bookmark, parse_bookmarks

CHROME = """<!DOCTYPE NETSCAPE-Bookmark-file-1>
<!-- This is an automatically generated file. -->
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE>
<H1>Bookmarks</H1>
<DL><p>
    <DT><H3 ADD_DATE="1700000000" PERSONAL_TOOLBAR_FOLDER="true">Bookmarks bar</H3>
    <DL><p>
        <DT><A HREF="https://example.com/top" ADD_DATE="1700000001">Top &amp; level</A>
        <DT><H3 ADD_DATE="1700000002">Programming</H3>
        <DL><p>
            <DT><A HREF="https://example.com/py" ADD_DATE="1700000003">Python</A>
            <DT><H3>Rust   Lang</H3>
            <DL><p>
                <DT><A HREF="https://example.com/rs" TAGS="systems,fast">Rust</A>
                <DD>A description that is not a title
            </DL><p>
            <DT><A HREF="javascript:alert(1)">A bookmarklet</A>
        </DL><p>
    </DL><p>
    <DT><H3>Other bookmarks</H3>
    <DL><p>
        <DT><A HREF="https://example.com/other">Other</A>
    </DL><p>
</DL><p>
"""

POCKET = """<!DOCTYPE html>
<html><head><title>Pocket Export</title></head><body>
<h1>Unread</h1>
<ul>
<li><a href="https://example.org/a" time_added="1700000000" tags="science,space">A</a></li>
<li><a href="http://example.org/b" time_added="1700000001" tags="">B</a></li>
</ul>
<h1>Read Archive</h1>
<ul>
<li><a href="https://example.org/c" time_added="1700000002" tags="">C</a></li>
</ul>
</body></html>
"""


def test_it_turns_folders_into_tags_below_the_browsers_own_roots():
    found = parse_bookmarks(CHROME)
    assert found.bookmarks == [
        Bookmark("https://example.com/top", "Top & level", ()),
        Bookmark("https://example.com/py", "Python", ("Programming",)),
        Bookmark("https://example.com/rs", "Rust", ("Programming", "Rust Lang", "systems", "fast")),
        Bookmark("https://example.com/other", "Other", ()),
    ]


def test_it_skips_what_cannot_be_fetched():
    found = parse_bookmarks(CHROME)
    assert found.skipped == ["javascript:alert(1)"]


def test_it_reads_a_pocket_export_with_its_tags():
    found = parse_bookmarks(POCKET)
    assert [(b.url, b.tags) for b in found.bookmarks] == [
        ("https://example.org/a", ("science", "space")),
        ("http://example.org/b", ()),
        ("https://example.org/c", ()),
    ]


def test_it_reads_a_plain_list_of_urls():
    text = (
        "# my reading list\nhttps://example.com/one\n\n  https://example.com/two  notes\nftp://x\n"
    )
    found = parse_bookmarks(text)
    assert [b.url for b in found.bookmarks] == [
        "https://example.com/one",
        "https://example.com/two",
    ]
    assert found.skipped == ["ftp://x"]


def test_it_keeps_repeats_for_the_caller_to_count():
    found = parse_bookmarks("https://example.com/a\nhttps://example.com/a\n")
    assert len(found.bookmarks) == 2
