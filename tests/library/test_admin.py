"""The admin as curation desk: tier moves (files follow), tag actions, re-analysis, merges."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from ingestion import services as ingestion_services
from library import files
from library.models import LibraryItem, Tag
from tests.conftest import LONG_PARAGRAPHS
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db

ITEMS = "/admin/library/libraryitem/"
TAGS = "/admin/library/tag/"


@pytest.fixture
def desk(staff) -> Client:
    staff.is_superuser = True
    staff.save()
    client = Client()
    client.force_login(staff)
    return client


def block_tier(tmp_path: Path, tier: str) -> None:
    """Put a file where a tier's folder should be, so storage cannot write there."""
    root = tmp_path / "files" / "library"
    root.mkdir(parents=True, exist_ok=True)
    (root / tier).write_text("in the way")


def front_matter(item: LibraryItem) -> dict:
    meta, _ = files.parse(files.read(item.file_path))
    return meta


def list_edit(desk: Client, item: LibraryItem, tier: str):
    return desk.post(
        ITEMS,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(item.pk),
            "form-0-tier": tier,
            "_save": "Save",
        },
        follow=True,
    )


def action(desk: Client, url: str, name: str, objects: list, **extra: str):
    """Run an action as the changelist's action bar posts it."""
    data = {"action": name, ACTION_CHECKBOX_NAME: [str(o.pk) for o in objects], "index": "0"}
    return desk.post(url, {**data, **extra}, follow=True)


def confirm(desk: Client, url: str, name: str, objects: list, **extra: str):
    """Post an action's intermediate page, as its own form does (no `index`)."""
    data = {"action": name, ACTION_CHECKBOX_NAME: [str(o.pk) for o in objects]}
    return desk.post(url, {**data, **extra}, follow=True)


def test_the_list_filters_by_quality_range_and_tag(desk):
    make_item("Great", score=8.0, tier="tier-a", tags=["bees"])
    make_item("Poor", score=2.0, tier="tier-d", tags=["soil"])
    html = desk.get(f"{ITEMS}?quality=high").content.decode()
    assert "Great" in html and "Poor" not in html
    html = desk.get(f"{ITEMS}?q=soil").content.decode()
    assert "Poor" in html and "Great" not in html


def test_editing_the_tier_in_the_list_moves_the_file(desk):
    item = make_item("Listed", tier="tier-c")
    old = item.file_path
    response = list_edit(desk, item, "tier-a")
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.tier == "tier-a" and item.file_path == "library/tier-a/listed.md"
    assert files.exists(item.file_path) and not files.exists(old)
    assert front_matter(item)["tier"] == "tier-a"


def test_a_storage_failure_in_the_list_changes_nothing(desk, tmp_path):
    item = make_item("Stuck in list", tier="tier-c")
    block_tier(tmp_path, "tier-d")
    response = list_edit(desk, item, "tier-d")
    assert "not moved" in response.content.decode()
    item.refresh_from_db()
    assert item.tier == "tier-c" and files.exists(item.file_path)
    assert front_matter(item)["tier"] == "tier-c"


def test_the_change_form_moves_the_file_with_the_tier(desk):
    item = make_item("Edited", tier="tier-b", tags=["bees"])
    form = desk.get(f"{ITEMS}{item.pk}/change/")
    assert form.status_code == 200
    data = {
        "url": item.url,
        "title": "Edited again",
        "tier": "tier-d",
        "quality_score": "3.0",
        "quality_reasons": "[]",
        "flags": "[]",
        "tags": [str(t.pk) for t in item.tags.all()],
        "word_count": "100",
        "reading_minutes": "1",
        "content_hash": item.content_hash,
        "body": item.body,
    }
    response = desk.post(f"{ITEMS}{item.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    item.refresh_from_db()
    assert item.tier == "tier-d" and item.title == "Edited again"
    assert item.file_path.startswith("library/tier-d/")
    meta = front_matter(item)
    assert meta["tier"] == "tier-d" and meta["title"] == "Edited again" and meta["tags"] == ["bees"]
    assert len(files.listdir_recursive()) == 1


def test_a_storage_failure_in_the_change_form_changes_nothing(desk, tmp_path):
    item = make_item("Unmoved", tier="tier-b")
    block_tier(tmp_path, "tier-a")
    data = {
        "url": item.url,
        "title": "Renamed",
        "tier": "tier-a",
        "quality_score": "9.0",
        "quality_reasons": "[]",
        "flags": "[]",
        "word_count": "100",
        "reading_minutes": "1",
        "content_hash": item.content_hash,
        "body": item.body,
    }
    response = desk.post(f"{ITEMS}{item.pk}/change/", data, follow=True)
    assert "Nothing changed" in response.content.decode()
    item.refresh_from_db()
    assert item.tier == "tier-b" and item.title == "Unmoved"
    assert front_matter(item)["title"] == "Unmoved"


def test_the_bulk_move_action_moves_every_file(desk):
    items = [
        make_item(f"Bulk {i}", tier="tier-c", url=f"https://example.com/b{i}") for i in range(2)
    ]
    response = action(desk, ITEMS, "move_to_tier_a", items)
    assert "Moved 2 item(s) to Tier A" in response.content.decode()
    for item in items:
        item.refresh_from_db()
        assert item.tier == "tier-a" and front_matter(item)["tier"] == "tier-a"
    assert all(p.startswith("library/tier-a/") for p in files.listdir_recursive())


def test_the_bulk_tag_actions_add_and_remove_a_tag(desk):
    one = make_item("One", tags=["bees"], url="https://example.com/1")
    two = make_item("Two", tags=["soil"], url="https://example.com/2")
    response = action(desk, ITEMS, "add_tag", [one, two], tag="Pollination")
    assert "Added “pollination” on 2 item(s)" in response.content.decode()
    assert front_matter(one)["tags"] == ["bees", "pollination"]
    assert sorted(two.tag_names()) == ["pollination", "soil"]
    action(desk, ITEMS, "remove_tag", [one, two], tag="bees")
    assert front_matter(one)["tags"] == ["pollination"]
    response = action(desk, ITEMS, "add_tag", [one], tag="  ")
    assert "Type the tag" in response.content.decode()


def test_reanalysis_rescores_and_moves_the_file(desk):
    text = "\n\n".join(LONG_PARAGRAPHS * 3)
    item = make_item("Bees and orchards", tier="tier-d", score=1.0, tags=["old tag"], text=text)
    response = action(desk, ITEMS, "reanalyze", [item])
    assert "Re-analysed 1 item(s)" in response.content.decode()
    item.refresh_from_db()
    assert item.analyzer == "local" and item.quality_score != 1.0
    assert item.file_path.startswith(f"library/{item.tier}/")
    meta = front_matter(item)
    assert meta["tier"] == item.tier and meta["quality_score"] == item.quality_score
    assert meta["summary"] == item.summary and meta["tags"] == item.tag_names() != ["old tag"]
    assert files.listdir_recursive() == [item.file_path]


def test_merging_tags_retags_items_rewrites_files_and_deletes_old_tags(desk):
    one = make_item("One", tags=["ml", "bees"], url="https://example.com/1")
    two = make_item("Two", tags=["machine learning"], url="https://example.com/2")
    tags = list(Tag.objects.filter(name__in=["ml", "machine learning"]))
    page = action(desk, TAGS, "merge_selected", tags)
    assert page.status_code == 200 and 'name="into"' in page.content.decode()
    response = confirm(desk, TAGS, "merge_selected", tags, into="Machine Learning")
    assert "2 item(s) re-tagged, 1 tag(s) deleted" in response.content.decode()
    assert not Tag.objects.filter(name="ml").exists()
    assert sorted(one.tag_names()) == ["bees", "machine learning"]
    assert sorted(front_matter(one)["tags"]) == ["bees", "machine learning"]
    assert front_matter(two)["tags"] == ["machine learning"]


def test_merging_needs_two_tags(desk):
    make_item("Lonely", tags=["solo"])
    response = action(desk, TAGS, "merge_selected", list(Tag.objects.all()))
    assert "Select at least two tags" in response.content.decode()


def test_jobs_stay_read_only_with_their_events(desk, alice):
    job = ingestion_services.job_submit(url="https://example.com/j", submitted_by=alice)
    page = desk.get(f"/admin/ingestion/job/{job.pk}/change/")
    assert page.status_code == 200
    assert f"/jobs/{job.pk}/" in page.content.decode()
    assert desk.get("/admin/ingestion/job/add/").status_code == 403


def test_deleting_an_item_deletes_its_file(desk):
    item = make_item("Doomed")
    path = item.file_path
    response = action(desk, ITEMS, "delete_selected", [item], post="yes")
    assert response.status_code == 200
    assert not LibraryItem.objects.filter(pk=item.pk).exists()
    assert not files.exists(path)
    assert desk.get(f"{ITEMS}add/").status_code == 403
