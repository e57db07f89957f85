"""In a real browser: browse and filter the library, read an item, curate it as staff."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from library import files
from library.models import LibraryItem
from tests.browser.conftest import Live, log_in_as, shoot
from tests.conftest import LONG_PARAGRAPHS
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shelf(settings, live: Live) -> dict:
    """Items stored through the real service into the live server's own storage."""
    default = settings.STORAGES["default"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**default, "OPTIONS": {**default["OPTIONS"], "location": str(live.files)}},
    }
    body = "\n\n".join(LONG_PARAGRAPHS)
    items = {
        "bees": make_item(
            "Bees and orchards", tier="tier-a", score=8.6, tags=["bees", "farming"], text=body
        ),
        "rust": make_item("Rust ownership explained", tier="tier-b", score=6.4, tags=["rust"]),
        "soil": make_item("Soil health basics", tier="tier-c", score=4.2, tags=["farming"]),
        "ads": make_item("Ten tricks", tier="tier-d", score=1.5, tags=["listicle"]),
    }
    summaries = {
        "bees": "Hives within two hundred metres of fruit trees raised yields by almost a third.",
        "rust": "How the borrow checker turns ownership rules into memory safety at compile time.",
        "soil": "Organic matter, structure and life: what keeps a soil healthy.",
        "ads": "A list of tips with little substance behind each one.",
    }
    for key, summary in summaries.items():
        LibraryItem.objects.filter(pk=items[key].pk).update(summary=summary)
    return items


def titles(page) -> list[str]:
    return page.locator(".item__title").all_inner_texts()


def test_it_filters_the_library_by_tier_and_tag(page, context, live, alice, shelf):
    log_in_as(context, live, alice)
    page.goto("/")
    expect(page.locator(".item")).to_have_count(4)
    shoot(page, "library")
    page.get_by_label("Tier", exact=True).select_option("tier-a")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".item__title")).to_have_text(["Bees and orchards"])
    expect(page).to_have_url(f"{live.base}/?q=&tier=tier-a&sort=newest")
    page.get_by_label("Tier", exact=True).select_option("")
    page.get_by_role("checkbox", name="farming").check()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".item__title")).to_have_text(["Soil health basics", "Bees and orchards"])
    page.get_by_label("Sort").select_option("quality")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".item__title")).to_have_text(["Bees and orchards", "Soil health basics"])
    # A tag on an entry is a link to that tag's items.
    page.locator(".item").first.get_by_role("link", name="bees", exact=True).click()
    expect(page.locator(".item__title")).to_have_text(["Bees and orchards"])


def test_it_searches_the_library(page, context, live, alice, shelf):
    log_in_as(context, live, alice)
    page.goto("/")
    page.get_by_label("Search").fill("ownership")
    page.keyboard.press("Enter")
    expect(page.locator(".item__title")).to_have_text(["Rust ownership explained"])


def test_staff_moves_an_item_to_another_tier_and_its_file_moves(page, context, live, staff, shelf):
    item = shelf["soil"]
    old = live.files / item.file_path
    assert old.exists()
    log_in_as(context, live, staff)
    page.goto(f"/items/{item.pk}/")
    page.get_by_label("Move to tier").select_option("tier-a")
    page.get_by_role("button", name="Move").click()
    expect(page.locator(".message--success")).to_contain_text("Moved to Tier A")
    expect(page.locator(".file-path")).to_have_text("library/tier-a/soil-health-basics.md")
    moved = live.files / "library" / "tier-a" / "soil-health-basics.md"
    assert moved.exists() and not old.exists()
    meta, _ = files.parse(moved.read_text())
    assert meta["tier"] == "tier-a"
    page.get_by_label("Tags (comma separated)").fill("soil, farming, Compost")
    page.get_by_role("button", name="Save tags").click()
    expect(page.locator(".message--success")).to_contain_text("compost")
    meta, _ = files.parse(moved.read_text())
    assert sorted(meta["tags"]) == ["compost", "farming", "soil"]


def test_readers_see_the_article_but_no_curation(page, context, live, alice, shelf):
    item = shelf["bees"]
    log_in_as(context, live, alice)
    page.goto(f"/items/{item.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Bees and orchards")
    expect(page.locator(".article-body")).to_contain_text("Researchers measured apple harvests")
    expect(page.get_by_role("link", name=f"Original: {item.url}")).to_be_visible()
    expect(page.get_by_label("Move to tier")).to_have_count(0)
    shoot(page, "item")


@pytest.mark.parametrize("path", ["/", "/ingest/", "/jobs/", "item"])
def test_pages_fit_a_phone_screen(page, context, live, staff, shelf, path):
    log_in_as(context, live, staff)
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"/items/{shelf['bees'].pk}/" if path == "item" else path)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def test_the_keyboard_reaches_the_skip_link_first_and_focus_is_visible(page, context, live, alice):
    log_in_as(context, live, alice)
    page.goto("/ingest/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    outline = skip.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"
