"""The Qdrant collection of chunk vectors: a derived index, rebuilt from the database.

Every chunk's vector lives in the database (`library.Chunk.vector`); Qdrant only
makes nearest-neighbour search fast, so it can be dropped and rebuilt at any time.
A point's id is the chunk's id; its payload carries `item_id`, `ordinal`, `tier`
and `tags` so searches can filter by tier and tags.

Who writes to the index:

- With `QDRANT_URL` (production), Qdrant is a server and every process writes
  to it directly.
- In the embedded default, Qdrant runs in local mode under `QDRANT_PATH`. Local
  mode holds a file lock, so only one process can ever open it. The web process
  owns it; workers never open it. A worker stores its vectors in the database
  (`library.Chunk` rows with `indexed_at` NULL), and before the web process
  searches it indexes the pending chunks. So the index may lag the database by
  one search, never lose a chunk, and two processes never fight over the lock.

The collection name carries the embedder's name and dimension, so switching
embedders starts a fresh collection instead of mixing incomparable vectors.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from django.conf import settings
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from library.embeddings import get_embedder

# Points per upsert request: large enough to amortise a round trip, small enough
# to stay under the server's request size limit at 1,536 dimensions.
_UPSERT_BATCH = 256
# Local mode only: how many unfiltered candidates a filtered search may scan before it
# falls back to the (slow) filtered query. 1,000 candidates cost about 25 ms.
_OVERSAMPLE_MIN = 100
_OVERSAMPLE_MAX = 1000


@dataclass
class ChunkPoint:
    chunk_id: int
    item_id: int
    ordinal: int
    vector: npt.NDArray[np.float32]
    tier: str
    tags: list[str] = field(default_factory=list)


@dataclass
class Hit:
    chunk_id: int
    item_id: int
    score: float


def collection_name(embedder_name: str, dim: int) -> str:
    """`chunks__<embedder>__<dim>`, restricted to characters Qdrant accepts everywhere."""
    name = re.sub(r"[^a-z0-9_-]+", "-", embedder_name.lower()).strip("-") or "embedder"
    return f"chunks__{name}__{dim}"


class VectorIndex:
    """One collection of chunk vectors in a Qdrant server (`url`) or local mode (`path`)."""

    def __init__(
        self,
        *,
        embedder_name: str,
        dim: int,
        url: str = "",
        api_key: str = "",
        path: Path | None = None,
    ) -> None:
        if not url and path is None:
            raise ValueError("VectorIndex needs a server url or a local path.")
        self.dim = dim
        self.collection = collection_name(embedder_name, dim)
        self.local = not url
        if self.local:
            assert path is not None  # checked above; narrows the type
            path.mkdir(parents=True, exist_ok=True)
            self._client = QdrantClient(path=str(path))
        else:
            self._client = QdrantClient(url=url, api_key=api_key or None)
        self._ready = False
        # Local mode is a plain Python object, not safe to share between the web
        # process's threads; a server client is, so it needs no lock.
        self._lock = threading.Lock() if self.local else None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._lock is None:
            yield
        else:
            with self._lock:
                yield

    def ensure_collection(self) -> None:
        """Create the collection and its payload indexes if they are missing."""
        with self._guard():
            self._ensure()

    def _ensure(self) -> None:
        if not self._client.collection_exists(self.collection):
            try:
                self._client.create_collection(
                    self.collection,
                    vectors_config=models.VectorParams(
                        size=self.dim, distance=models.Distance.COSINE
                    ),
                )
            except UnexpectedResponse as error:
                # Another process created it between our check and our create.
                if error.status_code != 409:
                    raise
            # Local mode ignores payload indexes (and warns about them).
            if not self.local:
                for name, schema in (
                    ("item_id", models.PayloadSchemaType.INTEGER),
                    ("tier", models.PayloadSchemaType.KEYWORD),
                    ("tags", models.PayloadSchemaType.KEYWORD),
                ):
                    self._client.create_payload_index(
                        self.collection, field_name=name, field_schema=schema
                    )
        self._ready = True

    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Add or replace points; the point id is the chunk id."""
        if not points:
            return
        with self._guard():
            if not self._ready:
                self._ensure()
            for start in range(0, len(points), _UPSERT_BATCH):
                batch = points[start : start + _UPSERT_BATCH]
                self._client.upsert(
                    self.collection,
                    points=[
                        models.PointStruct(
                            id=point.chunk_id,
                            vector=np.asarray(point.vector, dtype=np.float32).tolist(),
                            payload={
                                "item_id": point.item_id,
                                "ordinal": point.ordinal,
                                "tier": point.tier,
                                "tags": list(point.tags),
                            },
                        )
                        for point in batch
                    ],
                    wait=True,
                )

    def delete_item(self, item_id: int) -> None:
        """Remove every point of one library item."""
        with self._guard():
            if not self._ready:
                self._ensure()
            self._client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=_item_filter(item_id)),
                wait=True,
            )

    def set_payload(self, item_id: int, *, tier: str, tags: list[str]) -> None:
        """Re-label an item's points after curation changed its tier or tags."""
        with self._guard():
            if not self._ready:
                self._ensure()
            self._client.set_payload(
                self.collection,
                payload={"tier": tier, "tags": list(tags)},
                points=models.FilterSelector(filter=_item_filter(item_id)),
                wait=True,
            )

    def search(
        self,
        vector: npt.ArrayLike,
        *,
        limit: int = 10,
        tier: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[Hit]:
        """The `limit` nearest chunks, best first; `tags` must all be present."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        conditions: list[models.Condition] = []
        if tier is not None:
            conditions.append(
                models.FieldCondition(key="tier", match=models.MatchValue(value=tier))
            )
        conditions.extend(
            models.FieldCondition(key="tags", match=models.MatchValue(value=tag)) for tag in tags
        )
        with self._guard():
            if not self._ready:
                self._ensure()
            if conditions and self.local:
                hits = self._search_local_filtered(query, limit, tier, set(tags))
                if hits is not None:
                    return hits
            points = self._client.query_points(
                self.collection,
                query=query,
                query_filter=models.Filter(must=conditions) if conditions else None,
                limit=limit,
                with_payload=["item_id"],
            ).points
        return [_hit(point) for point in points]

    def _search_local_filtered(
        self, query: list[float], limit: int, tier: str | None, tags: set[str]
    ) -> list[Hit] | None:
        """Filter the nearest unfiltered candidates ourselves; None if too few match.

        Local mode checks a filter against every point's payload in Python, about
        15 ms per 1,000 points, while an unfiltered query is a numpy dot product.
        If at least `limit` of the nearest candidates pass the filter, they are
        exactly the best `limit` that pass it; otherwise the caller runs the slow
        filtered query.
        """
        candidates = max(_OVERSAMPLE_MIN, limit * 10)
        while True:
            points = self._client.query_points(
                self.collection,
                query=query,
                limit=candidates,
                with_payload=["item_id", "tier", "tags"],
            ).points
            matches = [
                point
                for point in points
                if (tier is None or (point.payload or {}).get("tier") == tier)
                and tags <= set((point.payload or {}).get("tags") or ())
            ]
            # Fewer points than asked for means the whole collection was seen.
            if len(matches) >= limit or len(points) < candidates:
                return [_hit(point) for point in matches[:limit]]
            if candidates >= _OVERSAMPLE_MAX:
                return None
            candidates = min(candidates * 10, _OVERSAMPLE_MAX)

    def count(self) -> int:
        with self._guard():
            if not self._ready:
                self._ensure()
            return self._client.count(self.collection, exact=True).count

    def drop(self) -> None:
        """Delete the collection; the next call that needs it creates it empty."""
        with self._guard():
            self._client.delete_collection(self.collection)
            self._ready = False

    def close(self) -> None:
        with self._guard():
            self._client.close()


def _hit(point: models.ScoredPoint) -> Hit:
    return Hit(
        chunk_id=int(point.id), item_id=int((point.payload or {})["item_id"]), score=point.score
    )


def _item_filter(item_id: int) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key="item_id", match=models.MatchValue(value=item_id))]
    )


_index: VectorIndex | None = None
_index_lock = threading.Lock()


def get_index() -> VectorIndex:
    """The process-wide index the settings describe, created on first use."""
    global _index
    with _index_lock:
        if _index is None:
            embedder = get_embedder()
            url = settings.QDRANT_URL
            _index = VectorIndex(
                embedder_name=embedder.name,
                dim=embedder.dim,
                url=url,
                api_key=settings.QDRANT_API_KEY,
                path=None if url else Path(settings.QDRANT_PATH),
            )
        return _index


def reset_index_for_tests() -> None:
    """Close and forget the process-wide index, so the next test opens its own."""
    global _index
    with _index_lock:
        if _index is not None:
            _index.close()
            _index = None
