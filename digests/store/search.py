"""Archive search over the index: keeping it in step with the items, and answering queries.

The pure parts (tokens, the query language, index entries, ranking) are digests.search; here
they meet the database, through one backend per dialect: search_sqlite (FTS5) and
search_postgres (tsvector + GIN). The index only ever holds space-separated tokens, and only
the tokenizer's output reaches SQL (quoted by the backend), so no user string can change the
shape of a query. Several words are ANDed, -word and -"phrase" exclude.

Common words. Ranking every match of 开源 (one item in nine) at a million items means reading
110,000 rows. Instead the candidates are the newest RANK_WINDOW matches, found in time order
without touching the others: both indexes are keyed by the recency key (published second, then
item id, in one 63-bit integer), which is the FTS5 rowid (FTS5 walks a posting list backwards
and stops) and a btree column on PostgreSQL (see search_postgres.newest_keys for the plan
there). If a query matches at most RANK_WINDOW items, all of them are ranked and ``total`` is
exact; otherwise the newest RANK_WINDOW matches are ranked, ``total`` is None ("more than the
window", not counted), and the pages after them go on with the older matches, newest first, so
every match is reachable and paging is stable. The trade-off: for a query that broad, an old
item with the word in its title comes after the ranked window (the first ten pages of five).
For a news archive, recency is the better tie-breaker there than term frequency, and the cost
stays flat from rare to very common words (bench/search.py: p95 under 30 ms at a million
items on both databases).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from digests.errors import DigestError
from digests.search.entries import MAX_KEY, Indexable, IndexableItem, SearchDoc, item_id_of_key, search_doc
from digests.search.query import ParsedQuery, parse_query
from digests.search.rank import RANK_WINDOW, ranked_keys
from digests.store import search_postgres, search_sqlite
from digests.store.models import Item


class _Backend(Protocol):
    """What a dialect's index provides; entries are (key, title, body) by item id."""

    def stored(self, session: Session, item_ids: Sequence[int]) -> dict[int, tuple[int, str, str]]: ...
    def is_empty(self, session: Session) -> bool: ...
    def delete(self, session: Session, item_ids: Sequence[int]) -> None: ...
    def insert(self, session: Session, docs: Sequence[SearchDoc]) -> None: ...
    def bulk_insert(self, session: Session, docs: Sequence[SearchDoc]) -> None: ...
    def clear(self, session: Session) -> None: ...
    def newest_keys(self, session: Session, query: ParsedQuery, n: int, below: int) -> list[int]: ...
    def newest_texts(self, session: Session, query: ParsedQuery, n: int) -> list[tuple[int, str, str]]: ...


_BACKENDS: dict[str, _Backend] = {"sqlite": search_sqlite, "postgresql": search_postgres}


def _backend(session: Session) -> _Backend:
    dialect = session.get_bind().dialect.name
    try:
        return _BACKENDS[dialect]
    except KeyError:
        raise DigestError(f"search has no index for {dialect} databases") from None


# ---------------------------------------------------------------------------------------------
# Keeping the index in step


def index_items(session: Session, items: Sequence[IndexableItem]) -> None:
    """Add or refresh the search entries of items (removed items are taken out)."""
    backend = _backend(session)
    removed = sorted({item.id for item in items if item.removed})
    docs = {item.id: search_doc(item) for item in items if not item.removed}
    if removed:
        backend.delete(session, removed)
    if not docs:
        return
    stored = backend.stored(session, list(docs))
    changed = [doc for doc in docs.values() if stored.get(doc.item_id) != (doc.key, doc.title, doc.body)]
    if not changed:
        return
    backend.delete(session, [doc.item_id for doc in changed if doc.item_id in stored])
    _insert(session, backend, changed)


def index_new_items(session: Session, items: Sequence[Indexable], *, bulk: bool = False) -> None:
    """Index items inserted in this transaction: nothing of theirs is in the index yet.

    bulk: through the backend's bulk path (PostgreSQL: COPY, and the GIN index filled in bulk).
    """
    _insert(session, _backend(session), [search_doc(item) for item in items], bulk=bulk)


def _insert(session: Session, backend: _Backend, docs: list[SearchDoc], *, bulk: bool = False) -> None:
    # In key order: FTS5 flushes its pending terms whenever a rowid goes backwards, and
    # PostgreSQL's BRIN window relies on rows stored roughly in key order.
    (backend.bulk_insert if bulk else backend.insert)(session, sorted(docs, key=lambda doc: doc.key))


def unindex_items(session: Session, item_ids: Sequence[int]) -> None:
    """Drop the search entries of items that no document holds any more."""
    if item_ids:
        _backend(session).delete(session, list(item_ids))


def rebuild_index(session: Session, *, batch: int = 2000) -> int:
    """Re-index every item that is not removed; the number indexed."""
    backend = _backend(session)
    backend.clear(session)
    count = 0
    pending: list[SearchDoc] = []
    # In key order, so that PostgreSQL stores rows roughly in key order (its BRIN window relies on
    # it); only the columns indexed, read as rows rather than loaded as Items.
    rows = (
        select(Item.id, Item.title, Item.summary, Item.commentary, Item.source, Item.tags, Item.published_at)
        .where(Item.removed.is_(False))
        .order_by(Item.published_at.asc().nulls_first(), Item.id)
        .execution_options(yield_per=batch)
    )
    for row in session.execute(rows):
        pending.append(search_doc(row))
        if len(pending) >= batch:
            _insert(session, backend, pending)
            count += len(pending)
            pending = []
    if pending:
        _insert(session, backend, pending)
        count += len(pending)
    return count


def rebuild_index_if_empty(session: Session) -> int:
    """Rebuild an empty index when items are stored (a database from before search); the number indexed."""
    if not _backend(session).is_empty(session):
        return 0
    if session.execute(select(Item.id).where(Item.removed.is_(False)).limit(1)).first() is None:
        return 0
    return rebuild_index(session)


# ---------------------------------------------------------------------------------------------
# Searching


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results, best first.

    ``total`` is the exact number of matches, or None when there are more than RANK_WINDOW
    (they are not counted: that is the cost a common word must not pay).
    """

    results: list[Item]
    total: int | None
    has_more: bool
    query: ParsedQuery

    @property
    def total_at_least(self) -> int:
        return self.total if self.total is not None else RANK_WINDOW + 1


def search_items(session: Session, query: str, *, limit: int = 5, offset: int = 0) -> SearchPage:
    """A page of the items matching query, ranked by relevance, then newest first."""
    parsed = parse_query(query)
    limit, offset = max(0, int(limit)), max(0, int(offset))
    if parsed.is_empty:
        return SearchPage([], 0, False, parsed)
    backend = _backend(session)
    if offset >= RANK_WINDOW:
        # A page past the ranked window: the older matches, newest first; no ranking needed.
        skip = offset - RANK_WINDOW
        older = backend.newest_keys(session, parsed, RANK_WINDOW + skip + limit + 1, MAX_KEY)
        capped = len(older) > RANK_WINDOW
        keys = older[RANK_WINDOW + skip : RANK_WINDOW + skip + limit]
        total = None if capped else len(older)
        return SearchPage(_items(session, keys), total, len(older) > offset + limit, parsed)
    newest = backend.newest_texts(session, parsed, RANK_WINDOW + 1)
    window = newest[:RANK_WINDOW]
    capped = len(newest) > RANK_WINDOW
    ranked = ranked_keys(parsed, window)
    keys = ranked[offset : offset + limit]
    has_more = capped or offset + limit < len(ranked)
    if capped and offset + limit > RANK_WINDOW:
        # The page runs past the ranked window: then the older matches, newest first.
        wanted = offset + limit - RANK_WINDOW
        older = backend.newest_keys(session, parsed, wanted + 1, window[-1][0])
        keys += older[:wanted]
        has_more = len(older) > wanted
    return SearchPage(_items(session, keys), None if capped else len(window), has_more, parsed)


def _items(session: Session, keys: Sequence[int]) -> list[Item]:
    ids = [item_id_of_key(key) for key in keys]
    if not ids:
        return []
    found = {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(ids)))}
    return [found[i] for i in ids if i in found and not found[i].removed]
