"""The library pages through Django's test client: list, filters, item, curation."""

from __future__ import annotations

import pytest
from django.test import Client

from library import files
from library.models import LibraryItem
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_web(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def staff_web(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def shelf() -> dict[str, LibraryItem]:
    return {
        "bees": make_item("Bees and orchards", tier="tier-a", score=8.5, tags=["bees", "farming"]),
        "rust": make_item("Rust ownership", tier="tier-b", score=6.5, tags=["programming"]),
        "soil": make_item("Soil health", tier="tier-c", score=4.0, tags=["farming"]),
    }


def titles(response) -> list[str]:
    return [item.title for item in response.context["page"].object_list]


@pytest.mark.parametrize("path", ["/", "/items/1/"])
def test_it_sends_visitors_to_log_in(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_public_library_is_readable_without_login(settings, shelf):
    settings.LIBRARIAN_PUBLIC_LIBRARY = True
    assert Client().get("/").status_code == 200
    assert Client().get(f"/items/{shelf['bees'].pk}/").status_code == 200
    response = Client().post(f"/items/{shelf['bees'].pk}/tier", {"tier": "tier-d"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_it_lists_items_with_title_site_tier_score_tags_and_summary(alice_web, shelf):
    response = alice_web.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert titles(response) == ["Soil health", "Rust ownership", "Bees and orchards"]
    assert "Example" in html and "tier--tier-a" in html and "quality 8.5" in html
    assert 'href="?tag=bees"' in html and "A summary." in html


def test_it_filters_by_tier_and_tags(alice_web, shelf):
    assert titles(alice_web.get("/?tier=tier-b")) == ["Rust ownership"]
    assert titles(alice_web.get("/?tag=farming")) == ["Soil health", "Bees and orchards"]
    assert titles(alice_web.get("/?tag=farming&tag=bees")) == ["Bees and orchards"]
    assert titles(alice_web.get("/?tag=unknown")) == []


def test_it_sorts_and_searches(alice_web, shelf):
    assert titles(alice_web.get("/?sort=quality"))[0] == "Bees and orchards"
    assert titles(alice_web.get("/?sort=title")) == sorted(i.title for i in shelf.values())
    assert titles(alice_web.get("/?q=ownership")) == ["Rust ownership"]


def test_bad_filter_values_show_an_error_not_a_crash(alice_web, shelf):
    response = alice_web.get("/?tier=tier-z&sort=sideways")
    assert response.status_code == 200
    assert titles(response) == []
    assert "form-errors" in response.content.decode()


def test_it_paginates(alice_web):
    for i in range(23):
        make_item(f"Item {i:02d}", url=f"https://example.com/p{i}", text=f"text number {i} " * 20)
    first = alice_web.get("/?sort=title")
    assert len(titles(first)) == 20 and "Page 1 of 2" in first.content.decode()
    second = alice_web.get("/?sort=title&page=2")
    assert titles(second) == ["Item 20", "Item 21", "Item 22"]
    assert alice_web.get("/?page=99").status_code == 200


def test_the_item_page_renders_sanitised_markdown(alice_web):
    body = (
        "## A heading\n\nSome **bold** text and a [link](https://example.org/x).\n\n"
        '<script>alert("x")</script>\n\n<img src=x onerror="alert(1)">\n\n'
        "[bad](javascript:alert(1))\n"
    )
    item = make_item("Markdown piece", text=body)
    html = alice_web.get(f"/items/{item.pk}/").content.decode()
    assert "<h2>A heading</h2>" in html and "<strong>bold</strong>" in html
    assert 'href="https://example.org/x"' in html and "noopener" in html
    assert "<script>alert" not in html and "onerror" not in html and "javascript:" not in html
    assert item.url in html and "+1 given" in html and item.file_path in html


def test_the_item_page_hides_curation_from_readers(alice_web, shelf):
    html = alice_web.get(f"/items/{shelf['bees'].pk}/").content.decode()
    assert "Move to tier" not in html


def test_readers_cannot_curate(alice_web, shelf):
    item = shelf["bees"]
    assert alice_web.post(f"/items/{item.pk}/tier", {"tier": "tier-d"}).status_code == 403
    assert alice_web.post(f"/items/{item.pk}/tags", {"tags": "x"}).status_code == 403
    item.refresh_from_db()
    assert item.tier == "tier-a" and item.tag_names() == ["bees", "farming"]


def test_unknown_items_are_404(alice_web, staff_web):
    assert alice_web.get("/items/999999/").status_code == 404
    assert staff_web.post("/items/999999/tier", {"tier": "tier-a"}).status_code == 404


def test_staff_moves_an_item_and_its_file(staff_web, shelf):
    item = shelf["soil"]
    old_path = item.file_path
    response = staff_web.post(f"/items/{item.pk}/tier", {"tier": "tier-a"}, follow=True)
    assert "Moved to Tier A" in response.content.decode()
    item.refresh_from_db()
    assert item.tier == "tier-a" and item.file_path == "library/tier-a/soil-health.md"
    assert files.exists(item.file_path) and not files.exists(old_path)
    meta, _ = files.parse(files.read(item.file_path))
    assert meta["tier"] == "tier-a"


def test_a_storage_failure_is_shown_and_changes_nothing(staff_web, shelf, tmp_path):
    item = shelf["soil"]
    # A file where the tier-d folder should be: the storage cannot write there.
    (tmp_path / "files" / "library" / "tier-d").write_text("in the way")
    response = staff_web.post(f"/items/{item.pk}/tier", {"tier": "tier-d"}, follow=True)
    assert "Nothing changed" in response.content.decode()
    item.refresh_from_db()
    assert item.tier == "tier-c" and files.exists(item.file_path)


def test_staff_sets_tags_and_the_front_matter_follows(staff_web, shelf):
    item = shelf["rust"]
    response = staff_web.post(f"/items/{item.pk}/tags", {"tags": "Rust, Memory Safety, rust"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert sorted(item.tag_names()) == ["memory safety", "rust"]
    meta, _ = files.parse(files.read(item.file_path))
    assert meta["tags"] == ["rust", "memory safety"]


def test_a_bad_tier_is_refused(staff_web, shelf):
    item = shelf["rust"]
    response = staff_web.post(f"/items/{item.pk}/tier", {"tier": "tier-z"}, follow=True)
    assert "Choose one of the tiers" in response.content.decode()
    item.refresh_from_db()
    assert item.tier == "tier-b"


def test_curation_forms_are_csrf_protected(staff, shelf):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    item = shelf["rust"]
    assert client.post(f"/items/{item.pk}/tier", {"tier": "tier-a"}).status_code == 403
    item.refresh_from_db()
    assert item.tier == "tier-b"


def test_login_and_logout(alice):
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and 'name="username"' in page.content.decode()
    response = client.post("/login/", {"username": "alice", "password": "alice-password-123"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/logout/").status_code == 405  # logging out is a POST
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_a_wrong_password_is_refused(alice):
    response = Client().post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "form-errors" in response.content.decode()
