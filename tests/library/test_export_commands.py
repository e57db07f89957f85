"""export_library writes the Markdown tree out; rebuild_from_files brings the rows back."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError

from library import files, services
from library.models import Chunk, LibraryItem, Tag
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db


def run(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, "--no-progress", stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize("name", ["export_library", "rebuild_from_files"])
def test_it_explains_itself_with_help(name):
    command = load_command_class("library", name)
    text = command.create_parser("manage.py", name).format_help()
    assert "--no-progress" in text and command.help.split()[0] in text


def test_it_exports_the_tree_as_a_zip(tmp_path):
    a = make_item("Alpha article", tier="tier-a", tags=["bees"])
    b = make_item("Beta article", tier="tier-c")
    out = tmp_path / "export.zip"
    run("export_library", "--format", "zip", "--out", str(out))
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted([a.file_path, b.file_path])
        meta, body = files.parse(archive.read(a.file_path).decode())
    assert a.file_path.startswith("library/tier-a/")
    assert meta["url"] == a.url and meta["tags"] == ["bees"] and "Alpha article" in body
    assert not (tmp_path / "export.zip.partial").exists()


def test_it_exports_json_lines(tmp_path):
    item = make_item("Gamma article", tier="tier-b", tags=["orchards", "bees"])
    out = tmp_path / "export.jsonl"
    run("export_library", "--format", "jsonl", "--out", str(out))
    (line,) = out.read_text().splitlines()
    record = json.loads(line)
    assert record["path"] == item.file_path
    assert record["front_matter"]["tier"] == "tier-b"
    assert record["front_matter"]["tags"] == ["orchards", "bees"]
    assert record["body"].startswith("Gamma article.")


def test_it_writes_json_lines_to_standard_output():
    make_item("Delta article")
    record = json.loads(run("export_library", "--format", "jsonl", "--out", "-"))
    assert record["front_matter"]["title"] == "Delta article"


def test_it_refuses_a_zip_on_standard_output():
    with pytest.raises(CommandError, match="standard output"):
        run("export_library", "--out", "-")


def test_it_rebuilds_items_and_tags_from_the_files():
    a = make_item("Alpha article", tier="tier-a", score=8.5, tags=["bees", "orchards"])
    b = make_item("Beta article", tier="tier-d", score=2.0)
    expected = {
        i.url: (i.title, i.tier, i.quality_score, i.file_path, i.content_hash, i.created_at)
        for i in (a, b)
    }
    LibraryItem.objects.all().delete()
    Tag.objects.all().delete()

    assert run("rebuild_from_files").split()[:3] == ["created=2", "updated=0", "unchanged=0"]
    rebuilt = {
        i.url: (i.title, i.tier, i.quality_score, i.file_path, i.content_hash, i.created_at)
        for i in LibraryItem.objects.all()
    }
    assert rebuilt == expected
    restored = LibraryItem.objects.get(url=a.url)
    assert sorted(restored.tag_names()) == ["bees", "orchards"]
    assert restored.body.startswith("Alpha article.") and restored.word_count == 500


def test_it_changes_nothing_when_run_twice():
    make_item("Alpha article", tags=["bees"])
    make_item("Beta article")
    assert "unchanged=2" in run("rebuild_from_files")
    assert "created=0 updated=0 unchanged=2" in run("rebuild_from_files")
    assert Chunk.objects.count() == 2  # unchanged text keeps its vectors


def test_it_takes_an_edited_file_as_the_truth():
    item = make_item("Alpha article", tier="tier-b", tags=["bees"])
    meta, body = files.parse(files.read(item.file_path))
    meta.update(title="Alpha, revised", tags=["pollination"])
    files.write(item.file_path, files.render(meta, body + "\n\nA new closing paragraph."))

    assert "updated=1" in run("rebuild_from_files")
    item.refresh_from_db()
    assert item.title == "Alpha, revised" and item.tag_names() == ["pollination"]
    assert item.body.endswith("A new closing paragraph.")
    assert not item.chunks.exists()  # vectors of the old text are gone until --embed


def test_it_embeds_items_whose_chunks_are_missing():
    item = make_item("Alpha article", tags=["bees"])
    LibraryItem.objects.all().delete()

    output = run("rebuild_from_files", "--embed")
    assert "created=1" in output and "embedded=1" in output
    restored = LibraryItem.objects.get(url=item.url)
    chunks = list(restored.chunks.all())
    assert chunks and all(c.embedder == restored.embedder for c in chunks)
    assert files.parse(files.read(restored.file_path))[0]["embedder"] == restored.embedder
    assert "created=0 updated=0 unchanged=1 embedded=0" in run("rebuild_from_files", "--embed")


def test_it_prunes_items_whose_file_is_gone():
    keep = make_item("Alpha article")
    gone = make_item("Beta article")
    files.delete(gone.file_path)
    assert "pruned=1" in run("rebuild_from_files", "--prune")
    assert list(LibraryItem.objects.values_list("url", flat=True)) == [keep.url]


def test_it_refuses_to_prune_everything_when_no_file_is_found():
    item = make_item("Alpha article")
    files.delete(item.file_path)
    with pytest.raises(CommandError, match="refusing"):
        run("rebuild_from_files", "--prune")
    assert LibraryItem.objects.filter(pk=item.pk).exists()


def test_it_reports_files_it_cannot_restore_and_fails():
    make_item("Alpha article")
    files.write("library/tier-b/no-url.md", files.render({"title": "No URL"}, "Body."))
    files.write("library/tier-b/broken.md", "---\ntitle: [unclosed\n---\n\nBody.\n")
    with pytest.raises(CommandError, match="2 file"):
        run("rebuild_from_files")
    assert LibraryItem.objects.count() == 1


def test_it_keeps_the_first_of_two_files_claiming_one_url():
    item = make_item("Alpha article", tier="tier-b")
    copy = item.file_path.replace("tier-b", "tier-c")
    files.write(copy, files.read(item.file_path))
    LibraryItem.objects.all().delete()
    with pytest.raises(CommandError, match="1 file"):
        run("rebuild_from_files")
    assert list(LibraryItem.objects.values_list("file_path", flat=True)) == [item.file_path]


def test_it_takes_the_tier_from_the_folder_when_the_front_matter_has_none(tmp_path: Path):
    files.write(
        "library/tier-a/hand-written.md",
        files.render({"title": "Hand written", "url": "https://example.com/hand"}, "Some text."),
    )
    run("rebuild_from_files")
    item = services.item_by_url("https://example.com/hand")
    assert item is not None and item.tier == "tier-a" and item.word_count == 2
