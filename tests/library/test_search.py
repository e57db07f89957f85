"""Search over real articles ingested through the pipeline: by meaning, by words, both.

The pipeline runs in this process as a worker would, so its chunks wait in the
database (indexed_at NULL) until the search, which runs as the index owner, catches up.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings

from library import search, services
from library.embeddings import get_embedder
from library.models import Chunk, LibraryItem
from library.vector_index import VectorIndex
from tests.library.corpus import SLUGS, ingest, ingest_corpus, page, result

pytestmark = pytest.mark.django_db(transaction=True)

# A question a reader might ask about each article, in words the article avoids.
PARAPHRASES = {
    "sourdough": "tending a bubbly homemade concoction that puffs up crusty loaves",
    "coral-reefs": "why undersea tropical ecosystems go pale during unusually balmy spells",
    "night-trains": "crossing the continent asleep in a bunk aboard a locomotive",
    "sleep-memory": "why dozing off properly lets pupils retain what they revised",
    "geothermal": "making dwellings cosy with volcanic warmth piped from beneath the island",
    "bebop": "frantic virtuosic music born in Manhattan nightclubs during wartime",
    "index-funds": "cheap passive investing outperforms paid professionals",
    "castles": "constructing fortresses for kings in the middle ages",
}


@pytest.fixture
def index_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process searches as the web process does: it owns the local index."""
    monkeypatch.setattr(services, "_index_owner", True)


@pytest.fixture
def corpus(page_server) -> dict[str, LibraryItem]:
    return ingest_corpus(page_server)


def top(q: str, **options) -> LibraryItem | None:
    hits = search.search(q=q, **options)
    return hits[0].item if hits else None


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_it_finds_each_article_from_a_paraphrase(corpus, index_owner, mode: str) -> None:
    found = {slug: top(q, mode=mode) for slug, q in PARAPHRASES.items()}

    assert found == {slug: corpus[slug] for slug in SLUGS}


def test_it_returns_the_best_matching_passage(corpus, index_owner) -> None:
    hit = search.search(q="how deep are the boreholes in Reykjavik", mode="semantic")[0]

    assert hit.item == corpus["geothermal"]
    assert "boreholes up to two kilometres deep" in hit.passage
    assert len(hit.passage) <= 310
    assert hit.chunk_id in set(corpus["geothermal"].chunks.values_list("pk", flat=True))
    assert 0 < hit.score <= 1


def test_it_finds_exact_terms_by_keyword(corpus, index_owner) -> None:
    for term, slug in [
        ("zooxanthellae", "coral-reefs"),
        ("Hellisheidi", "geothermal"),
        ("Minton's Playhouse", "bebop"),
        ("SPIVA", "index-funds"),
        ("putlog holes", "castles"),
    ]:
        hits = search.search(q=term, mode="keyword")
        assert hits[0].item == corpus[slug], term
        assert term.split()[0].lower() in hits[0].passage.lower()
        assert hits[0].highlights, term


def test_it_ranks_title_words_first_by_keyword(corpus, index_owner) -> None:
    hits = search.search(q="sleep", mode="keyword")

    assert hits[0].item == corpus["sleep-memory"]
    assert "sleep" in [word.lower() for word in hits[0].highlights]


def test_it_ranks_passages_with_all_the_words_first(corpus, index_owner) -> None:
    together = search.search(q="sea temperatures", mode="keyword")
    either = search.search(q="carriages zooxanthellae", mode="keyword")

    assert together[0].item == corpus["coral-reefs"]
    assert corpus["geothermal"] in [hit.item for hit in together[1:]]
    assert {hit.item for hit in either} == {corpus["night-trains"], corpus["coral-reefs"]}


def test_it_finds_nothing_for_stop_words_or_no_words(corpus, index_owner) -> None:
    assert search.search(q="the and of", mode="keyword") == []
    assert search.search(q="  ?! ", mode="keyword") == []
    assert search.search(q="  ", mode="semantic") == []


def test_it_indexes_what_a_worker_stored_before_searching(corpus, monkeypatch) -> None:
    pending = Chunk.objects.filter(indexed_at__isnull=True).count()
    assert pending == Chunk.objects.count() > 0
    assert search.catch_up() == 0  # not the owner: it must not touch the index

    monkeypatch.setattr(services, "_index_owner", True)
    assert top(PARAPHRASES["bebop"], mode="semantic") == corpus["bebop"]
    assert not Chunk.objects.filter(indexed_at__isnull=True).exists()


def test_it_catches_up_on_one_new_item_without_a_rebuild(corpus, page_server, monkeypatch):
    monkeypatch.setattr(services, "_index_owner", True)
    search.catch_up()
    monkeypatch.setattr(services, "_index_owner", False)
    html = page("castles").replace("How Medieval Castles Were Built", "Siege Engines")
    ingest(page_server.add("/siege", html.replace("Norman", "Norman and Angevin")))
    monkeypatch.setattr(services, "_index_owner", True)

    assert search.catch_up() == Chunk.objects.filter(item__title__startswith="Siege").count()
    assert search.catch_up() == 0


def test_it_runs_the_catch_up_in_the_background(corpus, index_owner) -> None:
    stop = threading.Event()
    thread = search.start_catch_up_thread(interval_s=0.05, stop=stop)
    try:
        assert thread is not None and thread.daemon
        for _ in range(400):
            if not Chunk.objects.filter(indexed_at__isnull=True).exists():
                break
            time.sleep(0.05)
        assert not Chunk.objects.filter(indexed_at__isnull=True).exists()
    finally:
        stop.set()
        if thread is not None:
            thread.join(10)
    assert thread is not None and not thread.is_alive()


def test_it_starts_no_background_catch_up_outside_the_owner(db) -> None:
    assert search.start_catch_up_thread() is None


def test_it_filters_by_tier(corpus, index_owner) -> None:
    for slug, item in corpus.items():
        services.item_set_tier(item, "tier-a" if slug in ("castles", "bebop") else "tier-c")
    query = PARAPHRASES["geothermal"]

    for mode in ("semantic", "keyword", "hybrid"):
        hits = search.search(q=query, mode=mode, tier="tier-a")
        assert {hit.item.tier for hit in hits} <= {"tier-a"}, mode
    assert top(query, mode="semantic", tier="tier-c") == corpus["geothermal"]
    assert top("Beaumaris", mode="keyword", tier="tier-a") == corpus["castles"]
    assert top("Beaumaris", mode="keyword", tier="tier-c") is None


def test_it_filters_by_all_of_the_tags(corpus, monkeypatch) -> None:
    # Relabelled by a non-owner: the owner refreshes the payloads when it catches up.
    services.item_set_tags(corpus["geothermal"], ["energy", "iceland"])
    services.item_set_tags(corpus["coral-reefs"], ["energy", "oceans"])
    monkeypatch.setattr(services, "_index_owner", True)

    for mode in ("semantic", "keyword", "hybrid"):
        hits = search.search(q="warm water", mode=mode, tags=["Energy"])
        assert {hit.item for hit in hits} == {corpus["geothermal"], corpus["coral-reefs"]}, mode
        hits = search.search(q="warm water", mode=mode, tags=["energy", "ICELAND"])
        assert [hit.item for hit in hits] == [corpus["geothermal"]], mode
        assert search.search(q="warm water", mode=mode, tags=["no such tag"]) == []


def test_it_skips_items_deleted_by_another_process(corpus, monkeypatch) -> None:
    monkeypatch.setattr(services, "_index_owner", True)
    search.catch_up()
    monkeypatch.setattr(services, "_index_owner", False)
    services.item_delete(corpus["castles"])  # its points stay in the index
    monkeypatch.setattr(services, "_index_owner", True)

    hits = search.search(q=PARAPHRASES["castles"], mode="semantic", limit=8)

    assert corpus["castles"].pk not in {hit.item.pk for hit in hits}
    assert len(hits) == 7


def test_it_finds_similar_items(corpus, page_server, index_owner) -> None:
    html = page("coral-reefs").replace("Why Coral Reefs Are Bleaching", "Reefs in Hot Water")
    html = html.replace("Researchers are testing", "Marine biologists are trying")
    copy = LibraryItem.objects.get(pk=result(ingest(page_server.add("/reefs", html)))["item_id"])

    hits = search.similar_items(corpus["coral-reefs"], limit=3)

    assert [hit.item for hit in hits][0] == copy
    assert corpus["coral-reefs"] not in [hit.item for hit in hits]
    assert len(hits) == 3
    assert hits[0].score > hits[1].score + 0.3


def test_it_finds_nothing_similar_to_an_item_without_chunks(corpus, index_owner) -> None:
    corpus["bebop"].chunks.all().delete()

    assert search.similar_items(corpus["bebop"]) == []


def test_it_answers_from_keywords_when_another_process_holds_the_index(corpus, index_owner) -> None:
    from library.vector_index import reset_index_for_tests

    reset_index_for_tests()
    holder = VectorIndex(
        embedder_name=get_embedder().name, dim=get_embedder().dim, path=settings.QDRANT_PATH
    )
    try:
        assert top("Hellisheidi", mode="hybrid") == corpus["geothermal"]
        with pytest.raises(search.IndexUnavailable):
            search.search(q="Hellisheidi", mode="semantic")
    finally:
        holder.close()


def test_it_refuses_an_unknown_mode(db) -> None:
    with pytest.raises(ValueError, match="mode"):
        search.search(q="x", mode="fuzzy")  # type: ignore[arg-type]


def test_it_fuses_rankings_by_reciprocal_rank() -> None:
    a, b, c = (search._Ranked(i, i * 10, 0.0) for i in (1, 2, 3))

    fused = search.fuse([[a, b], [b, c]])

    assert [r.item_id for r in fused] == [2, 1, 3]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1].score == pytest.approx(1 / 61)


def test_it_flags_a_near_copy_through_the_pipeline(page_server) -> None:
    original = ingest(page_server.add("/original", page("sleep-memory")))
    html = page("sleep-memory").replace("How Sleep Consolidates Memory", "Sleep on It")
    html = html.replace("Mind Matters", "The Weekly Digest").replace(
        "well supported:", "well supported, as several reviews conclude:"
    )
    copy = ingest(page_server.add("/copy", html))

    assert result(copy)["near_duplicate_of"] == [result(original)["item_id"]]
    assert "near_duplicate_of" not in result(original)
