"""Search the library: keyword (full text), semantic (vectors) and hybrid (both, fused).

- keyword: the database's own full-text index. PostgreSQL keeps a generated
  `tsvector` column with a GIN index on chunks (their text) and items (title
  weighted A, summary B); SQLite keeps FTS5 tables that triggers update whenever a
  chunk or an item row changes. Both are created by migration 0002 (and re-created
  by `install_keyword_index` if something dropped them), so no write path has to
  remember them. Neither column nor table is a model field: the ORM never sees them.
- semantic: the query is embedded and the nearest chunks are found in the vector
  index; each item scores by its best chunk, which becomes the passage.
- hybrid: reciprocal rank fusion (k = 60) of the two ranked lists.

The vector index lags the database by design (see library/vector_index.py): only
its owner (the web process, or every process with a Qdrant server) writes to it.
`catch_up()` runs before every semantic search and in a background thread of the
web process: it indexes pending chunks, and rebuilds the whole collection from
the database when most chunks are pending (after `manage.py reindex` marked them)
or when the index holds fewer points than the database says it should (its folder
was deleted). So a search never misses what a worker stored, and a lost index heals.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from library import services, vector_index
from library.analysis.tags import STOPWORDS
from library.embeddings import bytes_to_vector, get_embedder
from library.models import Chunk, LibraryItem, Tag
from library.queries import items_filtered

log = logging.getLogger(__name__)

Mode = Literal["semantic", "keyword", "hybrid"]
MODES: tuple[Mode, ...] = ("semantic", "keyword", "hybrid")

RRF_K = 60
# Hybrid fuses deeper lists than it returns: an item ranked 30th by one method and
# 2nd by the other should still come out near the top.
_FUSION_DEPTH = 20
# Chunk hits fetched per wanted item, since one item's chunks crowd the top.
_CHUNKS_PER_ITEM = 3
_PASSAGE_CHARS = 300
_MAX_TERMS = 32
_REBUILD_BATCH = 1000

# Letters and digits only: every term is then safe inside FTS5 quotes and to_tsquery.
_TERM = re.compile(r"[^\W_]+")


class IndexUnavailable(Exception):
    """The vector index cannot be opened here (another process holds local mode)."""


@dataclass(frozen=True)
class SearchHit:
    item: LibraryItem
    score: float
    passage: str
    chunk_id: int | None = None
    highlights: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Ranked:
    item_id: int
    chunk_id: int | None
    score: float


# --- the public reads ------------------------------------------------------------------


def search(
    *,
    q: str,
    mode: Mode = "hybrid",
    tier: str | None = None,
    tags: Sequence[str] = (),
    limit: int = 10,
) -> list[SearchHit]:
    """The best `limit` items for `q`, best first; `tags` must all be present."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    canonical_tags = _canonical_tags(tags)
    if canonical_tags is None:
        return []
    terms = query_terms(q)
    if mode == "keyword":
        ranked = _keyword(terms, tier, canonical_tags, depth=limit)
    elif mode == "semantic":
        ranked = _semantic(q, tier, canonical_tags, depth=limit)
    else:
        depth = max(limit, _FUSION_DEPTH)
        keyword = _keyword(terms, tier, canonical_tags, depth=depth)
        try:
            semantic = _semantic(q, tier, canonical_tags, depth=depth)
        except IndexUnavailable:
            log.warning("vector index unavailable; hybrid search answers from keywords only")
            semantic = []
        ranked = fuse([semantic, keyword])
    return _hits(ranked, terms, limit)


def similar_items(item: LibraryItem, *, limit: int = 10) -> list[SearchHit]:
    """Items whose chunks lie nearest the centroid of `item`'s chunks; not `item` itself."""
    blobs = item.chunks.filter(embedder=get_embedder().name).values_list("vector", flat=True)
    vectors = [bytes_to_vector(bytes(blob)) for blob in blobs]
    if not vectors:
        return []
    centroid = np.mean(vectors, axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    catch_up()
    ranked = _nearest(centroid, depth=limit + 1, exclude=item.pk)
    return _hits(ranked, [], limit)


def query_terms(q: str) -> list[str]:
    """The query's distinct words, lower-cased, without stop words or stray letters."""
    words = [word.lower() for word in _TERM.findall(q)]
    # A lone Latin letter is mostly the "s" of "Minton's" and would match everything.
    kept = [w for w in words if w not in STOPWORDS and not (len(w) == 1 and w.isascii())]
    return list(dict.fromkeys(kept))[:_MAX_TERMS]


def fuse(lists: Sequence[Sequence[_Ranked]], k: int = RRF_K) -> list[_Ranked]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) to an item's score.

    An item keeps the chunk of the list that ranked it best (the first list on a tie).
    """
    scores: dict[int, float] = defaultdict(float)
    chosen: dict[int, tuple[int, int | None]] = {}
    for ranked in lists:
        for rank, hit in enumerate(ranked, start=1):
            scores[hit.item_id] += 1.0 / (k + rank)
            if hit.item_id not in chosen or rank < chosen[hit.item_id][0]:
                chosen[hit.item_id] = (rank, hit.chunk_id)
    order = sorted(scores, key=lambda item_id: (-scores[item_id], chosen[item_id][0]))
    return [_Ranked(item_id, chosen[item_id][1], scores[item_id]) for item_id in order]


# --- keyword search --------------------------------------------------------------------

# (chunk query, item query) per database; {filter} limits item ids, the first %s is
# the query, the last the limit. Scores grow with relevance.
_KEYWORD_SQL = {
    "postgresql": (
        "SELECT c.item_id, c.id, ts_rank(c.search_vector, q) AS score"
        " FROM library_chunk c, to_tsquery('english', %s) q"
        " WHERE c.search_vector @@ q{filter} ORDER BY score DESC, c.id LIMIT %s",
        "SELECT i.id, ts_rank(i.search_vector, q) AS score"
        " FROM library_libraryitem i, to_tsquery('english', %s) q"
        " WHERE i.search_vector @@ q{filter} ORDER BY score DESC, i.id LIMIT %s",
    ),
    "sqlite": (
        "SELECT c.item_id, c.id, -bm25(library_chunk_fts) AS score FROM library_chunk_fts"
        " JOIN library_chunk c ON c.id = library_chunk_fts.rowid"
        " WHERE library_chunk_fts MATCH %s{filter} ORDER BY score DESC, c.id LIMIT %s",
        # Title matches weigh most, then the summary.
        "SELECT rowid, -bm25(library_libraryitem_fts, 10.0, 3.0) AS score"
        " FROM library_libraryitem_fts"
        " WHERE library_libraryitem_fts MATCH %s{filter} ORDER BY score DESC, rowid LIMIT %s",
    ),
}
_FILTER_COLUMNS = {"postgresql": ("c.item_id", "i.id"), "sqlite": ("c.item_id", "rowid")}


def _keyword(
    terms: list[str], tier: str | None, tags: Sequence[str], *, depth: int
) -> list[_Ranked]:
    """Items with a passage holding all the terms first, then items with any of them.

    Terms are matched per chunk, so an item whose terms fall in different passages
    still comes, after those that have them together.
    """
    if not terms:
        return []
    install_keyword_index()
    ranked = _keyword_query(terms, "and", tier, tags, depth)
    if len(ranked) < depth and len(terms) > 1:
        seen = {r.item_id for r in ranked}
        more = _keyword_query(terms, "or", tier, tags, depth)
        ranked += [r for r in more if r.item_id not in seen][: depth - len(ranked)]
    return ranked


def _keyword_query(
    terms: list[str], join: str, tier: str | None, tags: Sequence[str], depth: int
) -> list[_Ranked]:
    vendor = connection.vendor
    if vendor == "postgresql":
        match = (" & " if join == "and" else " | ").join(terms)
    else:
        match = (" AND " if join == "and" else " OR ").join(f'"{t}"' for t in terms)
    filter_sql, filter_params = "", []
    if tier or tags:
        ids = items_filtered(tier=tier, tags=tags).order_by().values("pk")
        subquery, params = ids.query.sql_with_params()
        filter_sql, filter_params = " AND {column} IN (" + subquery + ")", list(params)
    chunk_sql, item_sql = _KEYWORD_SQL[vendor]
    chunk_column, item_column = _FILTER_COLUMNS[vendor]
    best: dict[int, _Ranked] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            chunk_sql.format(filter=filter_sql.format(column=chunk_column)),
            [match, *filter_params, depth * _CHUNKS_PER_ITEM],
        )
        for item_id, chunk_id, score in cursor.fetchall():
            if item_id not in best:
                best[item_id] = _Ranked(item_id, chunk_id, float(score))
        cursor.execute(
            item_sql.format(filter=filter_sql.format(column=item_column)),
            [match, *filter_params, depth],
        )
        for item_id, score in cursor.fetchall():
            found = best.get(item_id)
            chunk_id = found.chunk_id if found else None
            best[item_id] = _Ranked(item_id, chunk_id, float(score) + (found.score if found else 0))
    return sorted(best.values(), key=lambda r: (-r.score, r.item_id))[:depth]


# Each statement is idempotent; the triggers keep external-content FTS5 tables in step
# with their rows (the documented pattern: https://sqlite.org/fts5.html#external_content_tables).
_SQLITE_INSTALL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS library_chunk_fts USING fts5("
    "text, content='library_chunk', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER IF NOT EXISTS library_chunk_fts_insert AFTER INSERT ON library_chunk BEGIN"
    " INSERT INTO library_chunk_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS library_chunk_fts_delete AFTER DELETE ON library_chunk BEGIN"
    " INSERT INTO library_chunk_fts(library_chunk_fts, rowid, text)"
    " VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS library_chunk_fts_update AFTER UPDATE OF text"
    " ON library_chunk BEGIN"
    " INSERT INTO library_chunk_fts(library_chunk_fts, rowid, text)"
    " VALUES ('delete', old.id, old.text);"
    " INSERT INTO library_chunk_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE VIRTUAL TABLE IF NOT EXISTS library_libraryitem_fts USING fts5(title, summary,"
    " content='library_libraryitem', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER IF NOT EXISTS library_libraryitem_fts_insert AFTER INSERT"
    " ON library_libraryitem BEGIN INSERT INTO library_libraryitem_fts(rowid, title, summary)"
    " VALUES (new.id, new.title, new.summary); END",
    "CREATE TRIGGER IF NOT EXISTS library_libraryitem_fts_delete AFTER DELETE"
    " ON library_libraryitem BEGIN INSERT INTO library_libraryitem_fts"
    "(library_libraryitem_fts, rowid, title, summary)"
    " VALUES ('delete', old.id, old.title, old.summary); END",
    "CREATE TRIGGER IF NOT EXISTS library_libraryitem_fts_update AFTER UPDATE OF title, summary"
    " ON library_libraryitem BEGIN INSERT INTO library_libraryitem_fts"
    "(library_libraryitem_fts, rowid, title, summary)"
    " VALUES ('delete', old.id, old.title, old.summary);"
    " INSERT INTO library_libraryitem_fts(rowid, title, summary)"
    " VALUES (new.id, new.title, new.summary); END",
]
_SQLITE_OBJECTS = {
    "library_chunk_fts",
    "library_chunk_fts_insert",
    "library_chunk_fts_delete",
    "library_chunk_fts_update",
    "library_libraryitem_fts",
    "library_libraryitem_fts_insert",
    "library_libraryitem_fts_delete",
    "library_libraryitem_fts_update",
}
_SQLITE_REBUILD = [
    "INSERT INTO library_chunk_fts(library_chunk_fts) VALUES ('rebuild')",
    "INSERT INTO library_libraryitem_fts(library_libraryitem_fts) VALUES ('rebuild')",
]
# Generated columns need an immutable expression, hence the explicit 'english' config.
_POSTGRES_INSTALL = [
    "ALTER TABLE library_chunk ADD COLUMN IF NOT EXISTS search_vector tsvector"
    " GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED",
    "CREATE INDEX IF NOT EXISTS library_chunk_search_vector"
    " ON library_chunk USING gin (search_vector)",
    "ALTER TABLE library_libraryitem ADD COLUMN IF NOT EXISTS search_vector tsvector"
    " GENERATED ALWAYS AS (setweight(to_tsvector('english'::regconfig, title), 'A')"
    " || setweight(to_tsvector('english'::regconfig, summary), 'B')) STORED",
    "CREATE INDEX IF NOT EXISTS library_libraryitem_search_vector"
    " ON library_libraryitem USING gin (search_vector)",
]
_POSTGRES_OBJECTS = {
    "library_chunk_search_vector",
    "library_libraryitem_search_vector",
}
_POSTGRES_UNINSTALL = [
    "ALTER TABLE library_chunk DROP COLUMN IF EXISTS search_vector",
    "ALTER TABLE library_libraryitem DROP COLUMN IF EXISTS search_vector",
]
_SQLITE_UNINSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in sorted(_SQLITE_OBJECTS) if "fts_" in name),
    "DROP TABLE IF EXISTS library_chunk_fts",
    "DROP TABLE IF EXISTS library_libraryitem_fts",
]

_keyword_index_checked: set[str] = set()


def install_keyword_index(db: BaseDatabaseWrapper | None = None, *, force: bool = False) -> bool:
    """Create the full-text index where it is missing; True if anything was (re)built.

    Checked once per process and database: a later migration that rebuilds a table
    on SQLite drops its triggers, and this puts them back (and refills the index).
    `force` re-checks and, on SQLite, refills the index from the rows in any case.
    """
    db = db or connection
    if db.alias in _keyword_index_checked and not force:
        return False
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE indexname = ANY(%s)",
                [sorted(_POSTGRES_OBJECTS)],
            )
            missing = _POSTGRES_OBJECTS - {row[0] for row in cursor.fetchall()}
            for statement in _POSTGRES_INSTALL if missing else []:
                cursor.execute(statement)
        elif db.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE %s", ["library_%fts%"])
            missing = _SQLITE_OBJECTS - {row[0] for row in cursor.fetchall()}
            for statement in _SQLITE_INSTALL if missing else []:
                cursor.execute(statement)
            for statement in _SQLITE_REBUILD if missing or force else []:
                cursor.execute(statement)
        else:
            raise NotImplementedError(f"keyword search needs PostgreSQL or SQLite, not {db.vendor}")
    _keyword_index_checked.add(db.alias)
    return bool(missing)


def uninstall_keyword_index(db: BaseDatabaseWrapper) -> None:
    """Drop the full-text index (migration 0002 reversed)."""
    statements = _POSTGRES_UNINSTALL if db.vendor == "postgresql" else _SQLITE_UNINSTALL
    with db.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    _keyword_index_checked.discard(db.alias)


# --- semantic search and the index's upkeep --------------------------------------------


def _semantic(q: str, tier: str | None, tags: Sequence[str], *, depth: int) -> list[_Ranked]:
    if not q.strip():
        return []
    catch_up()
    vector = get_embedder().embed([q])[0]
    return _nearest(vector, depth=depth, tier=tier, tags=tags)


def _nearest(
    vector: npt.NDArray[np.float32],
    *,
    depth: int,
    tier: str | None = None,
    tags: Sequence[str] = (),
    exclude: int | None = None,
) -> list[_Ranked]:
    """The `depth` items nearest `vector`, each with its nearest chunk."""
    index = _open_index()
    hits = index.search(vector, limit=depth * _CHUNKS_PER_ITEM, tier=tier, tags=tags)
    best: dict[int, _Ranked] = {}
    for hit in hits:
        if hit.item_id != exclude and hit.item_id not in best:
            best[hit.item_id] = _Ranked(hit.item_id, hit.chunk_id, hit.score)
    return list(best.values())[:depth]


def _open_index() -> vector_index.VectorIndex:
    try:
        return vector_index.get_index()
    except RuntimeError as exc:
        # Qdrant local mode is locked by another process: the web server.
        raise IndexUnavailable(str(exc)) from exc


_catch_up_lock = threading.RLock()
# The index instance whose point count was compared with the database.
_verified: vector_index.VectorIndex | None = None


def catch_up() -> int:
    """Bring the vector index level with the database; returns the chunks it indexed.

    A no-op (one indexed query) when nothing is pending, and in processes that may
    not write the index.
    """
    global _verified
    if not services.may_write_index():
        return 0
    with _catch_up_lock:
        index = _open_index()
        chunks = Chunk.objects.filter(embedder=get_embedder().name)
        if _verified is not index:
            _verified = index
            if index.count() < chunks.filter(indexed_at__isnull=False).count():
                log.warning("the vector index lost points; rebuilding it from the database")
                return rebuild_index()
        pending = chunks.filter(indexed_at__isnull=True).count()
        if not pending:
            return 0
        if pending * 2 >= chunks.count():
            # Mostly pending (reindex asked for it): one bulk pass beats item by item,
            # and dropping the collection also clears points of deleted items.
            return rebuild_index()
        services.index_pending()
        return pending


def rebuild_index(*, progress: Callable[[int], object] | None = None) -> int:
    """Drop the collection and fill it from every chunk of the current embedder.

    Returns the number of chunks indexed; `progress` is called with each batch's size.
    Chunks of other embedders are left out: `manage.py reindex --embed` renews them.
    """
    with _catch_up_lock:
        index = _open_index()
        index.drop()
        index.ensure_collection()
        labels = _labels()
        chunks = Chunk.objects.filter(embedder=get_embedder().name).order_by("pk")
        done, last = 0, 0
        while True:
            batch = list(
                chunks.filter(pk__gt=last).values_list("pk", "item_id", "ordinal", "vector")[
                    :_REBUILD_BATCH
                ]
            )
            if not batch:
                return done
            last = batch[-1][0]
            points = [
                vector_index.ChunkPoint(
                    chunk_id=pk,
                    item_id=item_id,
                    ordinal=ordinal,
                    vector=bytes_to_vector(bytes(blob)),
                    tier=labels[item_id][0],
                    tags=labels[item_id][1],
                )
                for pk, item_id, ordinal, blob in batch
                # An item created since the labels were read stays pending for next time.
                if item_id in labels
            ]
            index.upsert(points)
            Chunk.objects.filter(pk__in=[p.chunk_id for p in points]).update(
                indexed_at=timezone.now()
            )
            done += len(points)
            if progress is not None:
                progress(len(batch))


def _labels() -> dict[int, tuple[str, list[str]]]:
    """item id → (tier, tag names): the payload each of its points carries."""
    labels: dict[int, tuple[str, list[str]]] = {
        pk: (tier, []) for pk, tier in LibraryItem.objects.values_list("pk", "tier")
    }
    through = LibraryItem.tags.through.objects.values_list("libraryitem_id", "tag__name")
    for item_id, name in through.order_by("libraryitem_id", "tag__name"):
        if item_id in labels:
            labels[item_id][1].append(name)
    return labels


def start_catch_up_thread(
    interval_s: float | None = None, *, stop: threading.Event | None = None
) -> threading.Thread | None:
    """In the index owner, index what workers stored every few seconds, off the request path.

    Searches catch up on their own too; this keeps them from paying for it. Runs
    until `stop` is set (or the process ends).
    """
    if not services.may_write_index():
        return None
    interval = float(interval_s if interval_s is not None else settings.LIBRARIAN_CATCH_UP_S)
    stopped = stop or threading.Event()

    def run() -> None:
        while not stopped.wait(interval):
            close_old_connections()
            try:
                catch_up()
            except Exception:  # noqa: BLE001
                log.warning("background index catch-up failed", exc_info=True)
            finally:
                close_old_connections()

    thread = threading.Thread(target=run, name="index-catch-up", daemon=True)
    thread.start()
    return thread


# --- shaping the results ---------------------------------------------------------------


def _canonical_tags(tags: Sequence[str]) -> list[str] | None:
    """Tags as stored (the index matches exactly); None if one of them does not exist."""
    names = []
    for tag in dict.fromkeys(t.strip() for t in tags if t.strip()):
        name = Tag.objects.filter(name__iexact=tag).values_list("name", flat=True).first()
        if name is None:
            return None
        names.append(name)
    return names


def _hits(ranked: Sequence[_Ranked], terms: list[str], limit: int) -> list[SearchHit]:
    """Load the ranked items (skipping any deleted since they were indexed) with passages."""
    items = LibraryItem.objects.filter(pk__in=[r.item_id for r in ranked]).prefetch_related("tags")
    by_id = {item.pk: item for item in items}
    chunk_ids = [r.chunk_id for r in ranked if r.chunk_id is not None]
    texts: dict[int, str] = dict(Chunk.objects.filter(pk__in=chunk_ids).values_list("pk", "text"))
    pattern = _highlighter(terms)
    hits = []
    for r in ranked:
        item = by_id.get(r.item_id)
        if item is None:
            continue
        text = texts.get(r.chunk_id) if r.chunk_id is not None else None
        passage = _passage(text or item.summary or item.body, pattern)
        found = (
            list(dict.fromkeys(m.group(0) for m in pattern.finditer(passage))) if pattern else []
        )
        hits.append(SearchHit(item, r.score, passage, r.chunk_id if text else None, found))
        if len(hits) == limit:
            break
    return hits


def _highlighter(terms: list[str]) -> re.Pattern[str] | None:
    """Words starting like a query term: a rough stem, so "pollination" finds "pollinate"."""
    if not terms:
        return None
    stems = sorted({t if len(t) <= 5 else t[: max(5, len(t) - 3)] for t in terms}, key=len)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, stems[::-1])) + r")\w*", re.IGNORECASE)


def _passage(text: str, pattern: re.Pattern[str] | None) -> str:
    """About `_PASSAGE_CHARS` of `text` on word boundaries, where most query terms meet."""
    text = " ".join(text.split())
    if len(text) <= _PASSAGE_CHARS:
        return text
    start = 0
    matches = list(pattern.finditer(text)) if pattern else []
    if matches:
        # Windows opening a little before each match; the one with most distinct terms wins.
        def terms_in(begin: int) -> int:
            end = begin + _PASSAGE_CHARS
            return len({m.group(0).lower() for m in matches if begin <= m.start() < end})

        begins = [max(0, m.start() - 40) for m in matches]
        best = max(begins, key=lambda b: (terms_in(b), -b))
        start = text.rfind(" ", 0, best) + 1 if best else 0
    end = text.rfind(" ", start, start + _PASSAGE_CHARS)
    if end <= start or start + _PASSAGE_CHARS >= len(text):
        end = min(len(text), start + _PASSAGE_CHARS) if end <= start else len(text)
    prefix = "…" if start else ""
    suffix = "…" if end < len(text) else ""
    return f"{prefix}{text[start:end].strip()}{suffix}"


def describe(hit: SearchHit) -> dict[str, Any]:
    """The search-specific fields of one hit, for the API."""
    return {"score": round(hit.score, 6), "passage": hit.passage, "highlights": hit.highlights}
