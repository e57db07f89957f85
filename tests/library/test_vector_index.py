"""The Qdrant index of chunk vectors, in local mode under the test's own folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from library.vector_index import (
    ChunkPoint,
    VectorIndex,
    collection_name,
    get_index,
    reset_index_for_tests,
)

DIM = 8


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def point(chunk_id: int, item_id: int, vector: np.ndarray, tier: str = "B", tags=()) -> ChunkPoint:
    return ChunkPoint(
        chunk_id=chunk_id,
        item_id=item_id,
        ordinal=chunk_id % 10,
        vector=vector,
        tier=tier,
        tags=list(tags),
    )


@pytest.fixture
def index(tmp_path: Path) -> Iterator[VectorIndex]:
    index = VectorIndex(embedder_name="test-embedder", dim=DIM, path=tmp_path / "index")
    index.ensure_collection()
    yield index
    index.close()


@pytest.fixture
def library(index: VectorIndex) -> VectorIndex:
    """Three items: 1 (tier A, bees), 2 (tier B, bees + honey), 3 (tier C, banks)."""
    index.upsert(
        [
            point(11, 1, unit(1, 0.1), "A", ["bees"]),
            point(12, 1, unit(1, 0.3), "A", ["bees"]),
            point(21, 2, unit(1, 0.2, 0.1), "B", ["bees", "honey"]),
            point(31, 3, unit(0, 1), "C", ["banks"]),
        ]
    )
    return index


def test_it_finds_the_nearest_chunks_first(library: VectorIndex) -> None:
    hits = library.search(unit(1, 0.1), limit=3)

    assert [(hit.chunk_id, hit.item_id) for hit in hits] == [(11, 1), (21, 2), (12, 1)]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_it_filters_by_tier(library: VectorIndex) -> None:
    hits = library.search(unit(1, 0.1), tier="B")

    assert [hit.chunk_id for hit in hits] == [21]


def test_it_filters_by_all_of_the_tags(library: VectorIndex) -> None:
    assert {hit.chunk_id for hit in library.search(unit(1), tags=["bees"])} == {11, 12, 21}
    assert [hit.chunk_id for hit in library.search(unit(1), tags=["bees", "honey"])] == [21]
    assert library.search(unit(1), tags=["bees", "banks"]) == []


def test_it_filters_by_tier_and_tags_together(library: VectorIndex) -> None:
    assert library.search(unit(1), tier="A", tags=["honey"]) == []
    assert [hit.chunk_id for hit in library.search(unit(0, 1), tier="C", tags=["banks"])] == [31]


def test_it_replaces_a_chunk_upserted_again(library: VectorIndex) -> None:
    library.upsert([point(31, 3, unit(1, 0.1), "C", ["banks"])])

    assert library.count() == 4
    assert library.search(unit(1, 0.1), limit=1)[0].chunk_id in {11, 31}
    assert library.search(unit(0, 1), tier="C")[0].score == pytest.approx(
        float(unit(0, 1) @ unit(1, 0.1)), abs=1e-5
    )


def test_it_deletes_every_chunk_of_one_item(library: VectorIndex) -> None:
    library.delete_item(1)

    assert library.count() == 2
    assert {hit.item_id for hit in library.search(unit(1), limit=10)} == {2, 3}


def test_it_relabels_an_item_after_curation(library: VectorIndex) -> None:
    library.set_payload(1, tier="D", tags=["archive"])

    assert {hit.chunk_id for hit in library.search(unit(1), tier="D")} == {11, 12}
    assert {hit.chunk_id for hit in library.search(unit(1), tags=["bees"])} == {21}
    assert [hit.chunk_id for hit in library.search(unit(1), tags=["archive"], limit=1)] == [11]


def test_it_heals_after_the_collection_is_dropped(library: VectorIndex) -> None:
    library.drop()
    library.ensure_collection()

    assert library.count() == 0
    assert library.search(unit(1)) == []
    library.upsert([point(41, 4, unit(1), "A")])
    assert [hit.chunk_id for hit in library.search(unit(1))] == [41]


def test_it_recreates_a_dropped_collection_on_the_next_write(library: VectorIndex) -> None:
    library.drop()

    library.upsert([point(41, 4, unit(1), "A")])

    assert library.count() == 1


def test_it_keeps_its_points_when_reopened(tmp_path: Path) -> None:
    first = VectorIndex(embedder_name="test-embedder", dim=DIM, path=tmp_path / "index")
    first.upsert([point(1, 1, unit(1)), point(2, 1, unit(0, 1))])
    first.close()

    again = VectorIndex(embedder_name="test-embedder", dim=DIM, path=tmp_path / "index")

    assert again.count() == 2
    assert again.search(unit(0, 1), limit=1)[0].chunk_id == 2
    again.close()


def test_it_lets_only_one_opener_hold_local_storage(index: VectorIndex, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        VectorIndex(embedder_name="test-embedder", dim=DIM, path=tmp_path / "index")


def test_it_names_the_collection_after_the_embedder_and_dimension() -> None:
    assert collection_name("all-minilm-l6-v2", 384) == "chunks__all-minilm-l6-v2__384"
    assert collection_name("Org/Text Embedding:3", 1536) == "chunks__org-text-embedding-3__1536"


def test_it_keeps_embedders_in_separate_collections(tmp_path: Path) -> None:
    small = VectorIndex(embedder_name="small", dim=DIM, path=tmp_path / "shared")
    small.upsert([point(1, 1, unit(1))])
    small.close()
    large = VectorIndex(embedder_name="large", dim=DIM * 2, path=tmp_path / "shared")

    assert large.count() == 0
    large.close()


def test_it_opens_one_index_per_process_from_the_settings(settings) -> None:
    settings.LIBRARIAN_EMBEDDER = "local"
    settings.QDRANT_URL = ""

    index = get_index()

    assert get_index() is index
    assert index.collection == "chunks__all-minilm-l6-v2__384"
    assert index.local
    assert Path(settings.QDRANT_PATH).is_dir()
    reset_index_for_tests()
    reopened = get_index()
    assert reopened is not index
    assert reopened.count() == 0


def test_it_needs_a_server_or_a_folder() -> None:
    with pytest.raises(ValueError):
        VectorIndex(embedder_name="x", dim=DIM)


def test_it_filters_exactly_in_a_larger_collection(index: VectorIndex) -> None:
    """Past the oversampled candidates too: one rare tag sits on the farthest point."""
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((1100, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tiers = rng.choice(["A", "B", "C"], size=1100)
    tags = [["common"] if i % 3 else ["common", "third"] for i in range(1100)]
    query = vectors[0]
    farthest = int(np.argmin(vectors @ query))
    tags[farthest] = ["rare"]
    index.upsert(
        [point(i + 1, i // 4 + 1, vectors[i], str(tiers[i]), tags[i]) for i in range(1100)]
    )

    def brute_force(keep: np.ndarray) -> list[int]:
        scores = np.where(keep, vectors @ query, -np.inf)
        return [int(i) + 1 for i in np.argsort(-scores)[:10]]

    third = np.array(["third" in t for t in tags])
    assert [h.chunk_id for h in index.search(query, tier="B")] == brute_force(tiers == "B")
    assert [h.chunk_id for h in index.search(query, tier="C", tags=["third"])] == brute_force(
        (tiers == "C") & third
    )
    assert [h.chunk_id for h in index.search(query, tags=["rare"])] == [farthest + 1]
