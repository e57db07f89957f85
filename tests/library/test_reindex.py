"""manage.py reindex, and how the vector index heals when its folder is lost."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from library import search, services
from library.embeddings import bytes_to_vector, get_embedder, vector_to_bytes
from library.management.commands.reindex import Command
from library.models import Chunk, LibraryItem
from library.vector_index import VectorIndex, get_index, reset_index_for_tests
from tests.library.corpus import ingest_corpus

pytestmark = pytest.mark.django_db(transaction=True)

SLUGS = ("sourdough", "night-trains", "index-funds")
QUERY = "crossing the continent asleep in a bunk aboard a locomotive"


@pytest.fixture
def corpus(page_server, monkeypatch):
    items = ingest_corpus(page_server, SLUGS)
    monkeypatch.setattr(services, "_index_owner", True)
    assert search.catch_up() == Chunk.objects.count()
    return items


def top(q: str = QUERY, mode: str = "semantic") -> LibraryItem | None:
    hits = search.search(q=q, mode=mode)  # type: ignore[arg-type]
    return hits[0].item if hits else None


def lose_the_index_folder() -> None:
    reset_index_for_tests()
    shutil.rmtree(settings.QDRANT_PATH)


def reindex(*args: str) -> str:
    out = io.StringIO()
    call_command("reindex", "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_it_restores_search_after_the_index_folder_is_deleted(corpus) -> None:
    assert top() == corpus["night-trains"]
    lose_the_index_folder()

    output = reindex()

    assert get_index().count() == Chunk.objects.count()
    assert f"indexed={Chunk.objects.count()}" in output
    assert top() == corpus["night-trains"]


def test_it_rebuilds_a_lost_index_by_itself_before_searching(corpus) -> None:
    lose_the_index_folder()

    assert top() == corpus["night-trains"]
    assert get_index().count() == Chunk.objects.count()


def test_it_leaves_the_rebuild_to_the_web_server_holding_the_index(corpus) -> None:
    reset_index_for_tests()
    embedder = get_embedder()
    holder = VectorIndex(embedder_name=embedder.name, dim=embedder.dim, path=settings.QDRANT_PATH)
    try:
        output = reindex()
    finally:
        holder.close()

    assert "the web server holds the local vector index" in output
    assert Chunk.objects.filter(indexed_at__isnull=True).count() == Chunk.objects.count()
    # The owner finds everything pending and rebuilds the collection in one pass.
    assert top() == corpus["night-trains"]
    assert not Chunk.objects.filter(indexed_at__isnull=True).exists()


def test_it_drops_points_of_deleted_items(corpus) -> None:
    LibraryItem.objects.filter(pk=corpus["night-trains"].pk).delete()  # the index not told

    reindex()

    assert get_index().count() == Chunk.objects.count()
    assert top() != corpus["night-trains"]


def test_it_re_embeds_chunks_of_another_embedder(corpus) -> None:
    old = corpus["sourdough"]
    expected = {c.pk: bytes_to_vector(bytes(c.vector)) for c in old.chunks.all()}
    old.chunks.update(embedder="old-model", vector=vector_to_bytes(np.zeros(4)))
    LibraryItem.objects.filter(pk=old.pk).update(embedder="old-model")
    bare = corpus["index-funds"]
    bare.chunks.all().delete()

    output = reindex("--embed")

    assert "embedded=2" in output
    renewed = list(old.chunks.order_by("ordinal"))
    assert {c.embedder for c in renewed} == {get_embedder().name}
    assert len(renewed) == len(expected)
    for chunk, vector in zip(renewed, expected.values(), strict=True):
        assert np.allclose(bytes_to_vector(bytes(chunk.vector)), vector, atol=1e-5)
    assert bare.chunks.exists()
    assert LibraryItem.objects.get(pk=old.pk).embedder == get_embedder().name
    assert get_index().count() == Chunk.objects.count()
    assert top("tending a bubbly homemade concoction that puffs up crusty loaves") == old


def test_it_leaves_chunks_of_another_embedder_out_without_embed(corpus) -> None:
    corpus["sourdough"].chunks.update(embedder="old-model")

    reindex()

    assert get_index().count() == Chunk.objects.exclude(embedder="old-model").count()


def test_it_rebuilds_a_dropped_keyword_index(corpus) -> None:
    search.uninstall_keyword_index(connection)

    assert "keyword index rebuilt" in reindex()
    assert top("Nightjet", mode="keyword") == corpus["night-trains"]


def test_it_puts_back_a_keyword_index_something_dropped(corpus) -> None:
    search.uninstall_keyword_index(connection)

    assert top("Nightjet", mode="keyword") == corpus["night-trains"]


def test_it_explains_itself() -> None:
    text = Command().create_parser("manage.py", "reindex").format_help()

    assert "--embed" in text and "--no-progress" in text
    assert "Rebuild the keyword index and the vector index" in text
