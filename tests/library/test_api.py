"""GET /api/v1/library: filters, sorting, paging and every bad value."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.library.factories import make_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def shelf():
    return [
        make_item("Alpha", tier="tier-a", score=9.0, tags=["python", "web"]),
        make_item("Bravo", tier="tier-b", score=6.5, tags=["python"]),
        make_item("Charlie", tier="tier-a", score=8.0, tags=["web"]),
        make_item("Delta", tier="tier-d", score=2.0),
    ]


def titles(response) -> list[str]:
    return [item["title"] for item in response.json()["items"]]


def test_it_lists_with_the_contract_shape(alice_client, shelf):
    body = alice_client.get("/api/v1/library").json()
    assert body["total"] == 4 and body["limit"] == 100 and body["offset"] == 0
    item = body["items"][0]
    assert set(item) >= {"title", "url", "tier", "quality_score", "tags", "created_at", "file_path"}


def test_it_filters_by_tier_and_all_tags(alice_client, shelf):
    assert sorted(titles(alice_client.get("/api/v1/library?tier=tier-a"))) == ["Alpha", "Charlie"]
    assert titles(alice_client.get("/api/v1/library?tag=python&tag=web")) == ["Alpha"]
    assert sorted(titles(alice_client.get("/api/v1/library?tag=python"))) == ["Alpha", "Bravo"]


def test_it_sorts_and_pages(alice_client, shelf):
    by_score = titles(alice_client.get("/api/v1/library?sort=quality_score&order=desc"))
    assert by_score == ["Alpha", "Charlie", "Bravo", "Delta"]
    by_title = titles(alice_client.get("/api/v1/library?sort=title&order=asc&limit=2&offset=1"))
    assert by_title == ["Bravo", "Charlie"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("tier=tier-x", "tier"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("sort=colour", "sort"),
        ("order=sideways", "order"),
        ("colour=red", "colour"),
    ],
)
def test_it_rejects_bad_values_naming_the_field(alice_client, query, field):
    response = alice_client.get(f"/api/v1/library?{query}")
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_it_needs_a_signed_in_user_unless_public(settings, shelf):
    assert APIClient().get("/api/v1/library").status_code in (401, 403)
    settings.LIBRARIAN_PUBLIC_LIBRARY = True
    assert APIClient().get("/api/v1/library").status_code == 200


def test_it_shows_one_item(alice_client, shelf):
    body = alice_client.get(f"/api/v1/library/{shelf[0].pk}").json()
    assert body["title"] == "Alpha"
    assert body["quality_reasons"] == ["+1 given"]
    assert alice_client.get("/api/v1/library/999999").status_code == 404
