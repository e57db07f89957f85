"""The library's writes: files and rows change together."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from library import files, services
from library.models import LibraryItem
from tests.library.factories import FakeArticle, GivenAnalysis, make_item

pytestmark = pytest.mark.django_db


def test_it_writes_a_markdown_file_with_front_matter():
    item = make_item("Understanding Transformers", tier="tier-a", score=9.1, tags=["ai", "nlp"])
    assert item.file_path == "library/tier-a/understanding-transformers.md"
    meta, body = files.parse(files.read(item.file_path))
    assert meta["title"] == "Understanding Transformers"
    assert meta["tier"] == "tier-a"
    assert meta["tags"] == ["ai", "nlp"]
    assert meta["url"] == item.url
    assert body.startswith("Understanding Transformers.")


def test_it_upserts_by_url_and_removes_the_old_file():
    first = make_item("Old title", url="https://example.com/x")
    second = make_item("New title", url="https://example.com/x", tier="tier-c")
    assert first.pk == second.pk
    assert LibraryItem.objects.count() == 1
    assert not files.exists(first.file_path)
    assert files.exists(second.file_path)


def test_it_keeps_two_items_with_the_same_title_apart():
    one = make_item("Same", url="https://example.com/1", text="first text entirely")
    two = make_item("Same", url="https://example.com/2", text="second text, not alike")
    assert one.file_path != two.file_path
    assert files.exists(one.file_path) and files.exists(two.file_path)


def test_it_moves_the_file_when_the_tier_changes():
    item = make_item("Movable", tier="tier-c")
    old = item.file_path
    services.item_set_tier(item, "tier-a")
    item.refresh_from_db()
    assert item.file_path == "library/tier-a/movable.md"
    assert not files.exists(old)
    meta, _ = files.parse(files.read(item.file_path))
    assert meta["tier"] == "tier-a"


def test_it_changes_nothing_when_storage_fails(settings, tmp_path):
    item = make_item("Stuck", tier="tier-c")
    blocked = tmp_path / "files" / "library" / "tier-d"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the folder should be")
    with pytest.raises(services.StorageFailed):
        services.item_set_tier(item, "tier-d")
    item.refresh_from_db()
    assert item.tier == "tier-c"
    assert files.exists(item.file_path)


def test_it_rejects_an_unknown_tier():
    item = make_item("Tiered")
    with pytest.raises(ValueError, match="unknown tier"):
        services.item_set_tier(item, "tier-z")


def test_it_retags_and_rewrites_the_front_matter():
    item = make_item("Tagged", tags=["old"])
    services.item_set_tags(item, ["Python", "pythons", "Web Apps"])
    assert sorted(item.tag_names()) == sorted(files.parse(files.read(item.file_path))[0]["tags"])
    assert "python" in item.tag_names()


def test_it_deletes_file_and_row():
    item = make_item("Doomed")
    path = item.file_path
    services.item_delete(item)
    assert not LibraryItem.objects.exists()
    assert not default_storage.exists(path)


def test_it_flags_the_same_content_as_a_duplicate():
    original = make_item("Original", url="https://example.com/o", text="shared body text here")
    copy = services.item_store(
        url="https://example.com/copy",
        article=FakeArticle(title="Copy", text="Shared  body text here"),
        analysis=GivenAnalysis(tier="tier-c", quality_score=4),
        embedded=services.Embedded(["x"], np.ones((1, 4), np.float32), "t", "1"),
    )
    assert copy.result["near_duplicate_of"] == [original.pk]


def test_it_parses_files_without_front_matter():
    assert files.parse("just text") == ({}, "just text")
    assert files.parse("---\nunterminated") == ({}, "---\nunterminated")
