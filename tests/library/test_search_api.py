"""GET /api/v1/library/search and /api/v1/library/{id}/similar over real ingested pages."""

from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from library import services
from library.embeddings import get_embedder
from library.vector_index import VectorIndex, reset_index_for_tests
from tests.library.corpus import ingest_corpus

pytestmark = pytest.mark.django_db(transaction=True)

SLUGS = ("geothermal", "bebop", "castles", "coral-reefs")


@pytest.fixture
def corpus(page_server, monkeypatch):
    items = ingest_corpus(page_server, SLUGS)
    # The API runs in the web process, which owns the local index.
    monkeypatch.setattr(services, "_index_owner", True)
    return items


def test_it_searches_in_hybrid_mode_by_default(alice_client, corpus) -> None:
    response = alice_client.get("/api/v1/library/search", {"q": "heating homes with hot rock"})

    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "heating homes with hot rock"
    assert body["mode"] == "hybrid"
    assert body["total"] == len(body["items"]) == 4
    first = body["items"][0]
    assert first["id"] == corpus["geothermal"].pk
    assert first["title"] == "Iceland Heats Its Homes With the Earth"
    for key in ("url", "tier", "quality_score", "tags", "summary", "file_path", "created_at"):
        assert key in first
    assert first["score"] > body["items"][1]["score"]
    assert "Iceland" in first["passage"] or "heat" in first["passage"]
    assert isinstance(first["highlights"], list)


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_it_searches_in_each_mode(alice_client, corpus, mode: str) -> None:
    response = alice_client.get(
        "/api/v1/library/search", {"q": "Charlie Parker saxophone", "mode": mode, "limit": 2}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == mode
    assert body["items"][0]["id"] == corpus["bebop"].pk
    assert len(body["items"]) <= 2


def test_it_filters_by_tier_and_repeated_tags(alice_client, corpus) -> None:
    services.item_set_tier(corpus["castles"], "tier-a")
    services.item_set_tags(corpus["castles"], ["history", "wales"])
    services.item_set_tags(corpus["bebop"], ["history", "music"])

    tier = alice_client.get("/api/v1/library/search", {"q": "history", "tier": "tier-a"})
    tags = alice_client.get("/api/v1/library/search?q=music+history&tag=history&tag=music")

    assert {item["tier"] for item in tier.json()["items"]} == {"tier-a"}
    assert [item["id"] for item in tags.json()["items"]] == [corpus["bebop"].pk]
    assert tags.json()["items"][0]["tags"] == ["history", "music"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "x" * 501}, "q"),
        ({"q": "bees", "mode": "fuzzy"}, "mode"),
        ({"q": "bees", "limit": "0"}, "limit"),
        ({"q": "bees", "limit": "101"}, "limit"),
        ({"q": "bees", "limit": "ten"}, "limit"),
        ({"q": "bees", "tier": "tier-z"}, "tier"),
        ({"q": "bees", "sort": "title"}, "sort"),
    ],
)
def test_it_rejects_bad_parameters(alice_client, query: dict[str, str], field: str) -> None:
    response = alice_client.get("/api/v1/library/search", query)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"]


def test_it_needs_a_login(db) -> None:
    assert APIClient().get("/api/v1/library/search", {"q": "x"}).status_code in (401, 403)
    assert APIClient().get("/api/v1/library/1/similar").status_code in (401, 403)


def test_it_lists_similar_items(alice_client, corpus) -> None:
    response = alice_client.get(f"/api/v1/library/{corpus['coral-reefs'].pk}/similar?limit=2")

    assert response.status_code == 200
    body = response.json()
    assert body["item_id"] == corpus["coral-reefs"].pk
    assert body["total"] == 2
    ids = [item["id"] for item in body["items"]]
    assert corpus["coral-reefs"].pk not in ids
    assert set(ids) <= {item.pk for item in corpus.values()}
    assert body["items"][0]["score"] >= body["items"][1]["score"]


def test_it_answers_404_for_similar_items_of_an_unknown_item(alice_client, db) -> None:
    assert alice_client.get("/api/v1/library/999999/similar").status_code == 404


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=3"])
def test_it_rejects_bad_similar_parameters(alice_client, corpus, query: str) -> None:
    response = alice_client.get(f"/api/v1/library/{corpus['bebop'].pk}/similar?{query}")

    assert response.status_code == 400
    assert response.json()["field"] == query.split("=")[0]


def test_it_answers_503_when_the_index_is_held_elsewhere(alice_client, corpus) -> None:
    reset_index_for_tests()
    embedder = get_embedder()
    holder = VectorIndex(embedder_name=embedder.name, dim=embedder.dim, path=settings.QDRANT_PATH)
    try:
        semantic = alice_client.get("/api/v1/library/search", {"q": "jazz", "mode": "semantic"})
        similar = alice_client.get(f"/api/v1/library/{corpus['bebop'].pk}/similar")
        hybrid = alice_client.get("/api/v1/library/search", {"q": "Minton"})
    finally:
        holder.close()

    assert semantic.status_code == similar.status_code == 503
    assert "index" in semantic.json()["error"]
    assert hybrid.status_code == 200
    assert hybrid.json()["items"][0]["id"] == corpus["bebop"].pk


def test_it_documents_both_routes(alice_client, db) -> None:
    schema = alice_client.get("/api/schema/", {"format": "json"}).json()

    search = schema["paths"]["/api/v1/library/search"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"q", "mode", "tier", "tag", "limit"}
    assert "/api/v1/library/{item_id}/similar" in schema["paths"]
