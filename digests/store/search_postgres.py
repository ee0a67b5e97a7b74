"""The search index on PostgreSQL: search_docs (recency key, GIN tsvector) for matching,
search_texts (the token text) for ranking.

The tsvector is built here from the tokens as a literal (positions, and title weight A), never
by the text-search parser, and queries are tsquery literals of the needles' quoted lexemes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from digests.search.entries import MAX_KEY, SearchDoc, item_id_of_key
from digests.search.query import Needle, ParsedQuery
from digests.store import ingest_postgres

# The plan for "the newest n matches" (see newest_keys). Costs in microseconds, measured on the
# benchmark machine; only their ratios matter.
_PG_PROBE_ROWS = 2000  # the newest rows walked first
_PG_WALK_ROW = 1.25  # walking: one row read and its tsvector tested
_PG_GIN_MATCH = {"word": 0.3, "phrase": 1.0, "prefix": 1.2}  # a GIN bitmap, per match
_PG_HEAP_MATCH = 2.5  # reading a matched row for its key
_PG_WINDOW_ROW = 0.012  # the BRIN bitmap of a window, per row in it
_PG_WINDOW_MATCH = 10.0  # a window's heap pages are lossy: every row on them is rechecked
_PG_STEPS = 3  # walks or windows tried before one bitmap scan of everything older


def _lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector(doc: SearchDoc) -> str:
    """The tsvector literal of an entry: title lexemes weighted A, body after a gap."""
    positions: dict[str, list[str]] = {}
    title = doc.title.split()
    for pos, token in enumerate(title, start=1):
        positions.setdefault(token, []).append(f"{pos}A")
    for pos, token in enumerate(doc.body.split(), start=len(title) + 2):
        positions.setdefault(token, []).append(str(pos))
    return " ".join(_lexeme(token) + ":" + ",".join(places[:256]) for token, places in positions.items())


def _tsquery_phrase(needle: Needle) -> str:
    lexemes = [_lexeme(token) for token in needle.tokens]
    if needle.prefix:
        lexemes[-1] += ":*"
    return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"


def tsquery(query: ParsedQuery) -> str:
    """The tsquery literal of a query: its needles as quoted lexemes, nothing else."""
    parts = [_tsquery_phrase(needle) for needle in query.required]
    parts += ["!" + _tsquery_phrase(needle) for needle in query.forbidden]
    return " & ".join(parts)


def stored(session: Session, item_ids: Sequence[int]) -> dict[int, tuple[int, str, str]]:
    rows = session.execute(
        text(
            "SELECT d.item_id, d.key, t.title, t.body FROM search_docs d "
            "JOIN search_texts t ON t.item_id = d.item_id WHERE d.item_id = ANY(:ids)"
        ),
        {"ids": list(item_ids)},
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def is_empty(session: Session) -> bool:
    return session.execute(text("SELECT 1 FROM search_docs LIMIT 1")).first() is None


def delete(session: Session, item_ids: Sequence[int]) -> None:
    session.execute(text("DELETE FROM search_docs WHERE item_id = ANY(:ids)"), {"ids": list(item_ids)})
    session.execute(text("DELETE FROM search_texts WHERE item_id = ANY(:ids)"), {"ids": list(item_ids)})


def insert(session: Session, docs: Sequence[SearchDoc]) -> None:
    session.execute(
        text("INSERT INTO search_docs (item_id, key, tsv) VALUES (:item_id, :key, CAST(:tsv AS tsvector))"),
        [{"item_id": d.item_id, "key": d.key, "tsv": tsvector(d)} for d in docs],
    )
    session.execute(
        text("INSERT INTO search_texts (item_id, title, body) VALUES (:item_id, :title, :body)"),
        [{"item_id": d.item_id, "title": d.title, "body": d.body} for d in docs],
    )


# A batch of at least this many new entries goes into the GIN index in bulk (see bulk_insert).
_BULK_GIN_ROWS = 1000
_GIN_INDEX = "ix_search_docs_tsv"


def bulk_insert(session: Session, docs: Sequence[SearchDoc]) -> None:
    """Entries of items inserted in this transaction, through COPY.

    The GIN index has fastupdate off (no pending list for every search to scan), and so takes
    each row's hundreds of lexemes one tree insert at a time: ~1 ms a row, four fifths of a
    first ingest's time on PostgreSQL. For a large batch the index takes them in bulk instead:
    fastupdate on for this transaction, the rows into the pending list, gin_clean_pending_list
    (sorted, in maintenance_work_mem) and fastupdate off again before the commit, so no pending
    list outlives the batch (1,000 rows: ~0.25 s instead of ~1 s). ALTER INDEX holds an ACCESS
    EXCLUSIVE lock on the index until the commit, so searches wait for the batch to end (a few
    seconds, a large ingest only); without ownership of the index the rows go in one by one.
    A batch that fails after the COPY rolls fastupdate back to off, and the entries it left in the
    pending list (pointing at rows that never were) go with the next bulk batch or VACUUM.
    """
    connection = ingest_postgres.driver_connection(session)
    bulk = len(docs) >= _BULK_GIN_ROWS and connection.execute(
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%s)", (_GIN_INDEX,)
    ).fetchone() == (True,)
    if bulk:
        connection.execute(f"ALTER INDEX {_GIN_INDEX} SET (fastupdate = on)")
    ingest_postgres.copy_rows(session, "search_docs", ("item_id", "key", "tsv"),
                              ((d.item_id, d.key, tsvector(d)) for d in docs))
    if bulk:
        connection.execute(f"SELECT gin_clean_pending_list('{_GIN_INDEX}')")
        connection.execute(f"ALTER INDEX {_GIN_INDEX} SET (fastupdate = off)")
    ingest_postgres.copy_rows(session, "search_texts", ("item_id", "title", "body"),
                              ((d.item_id, d.title, d.body) for d in docs))


def clear(session: Session) -> None:
    session.execute(text("DELETE FROM search_docs"))
    session.execute(text("DELETE FROM search_texts"))


def newest_texts(session: Session, query: ParsedQuery, n: int) -> list[tuple[int, str, str]]:
    """(key, title, body) of the n newest matches."""
    keys = newest_keys(session, query, n, MAX_KEY)
    rows = session.execute(
        text("SELECT item_id, title, body FROM search_texts WHERE item_id = ANY(:ids)"),
        {"ids": [item_id_of_key(key) for key in keys]},
    )
    texts = {row[0]: (row[1], row[2]) for row in rows}
    return [(key, *texts.get(item_id_of_key(key), ("", ""))) for key in keys]


def newest_keys(session: Session, query: ParsedQuery, n: int, below: int) -> list[int]:
    """The keys of the n newest matches with key < below, without reading every match.

    GIN gives every match of a word at once (600,000 for 的 at a million items), unordered, and
    each must then be read from the table for its key. So, going back from the newest row:

    1. Walk the newest _PG_PROBE_ROWS rows in key order (btree), testing each row's tsvector
       with ts_match_vq, which GIN cannot serve, so the plan is always this bounded walk. Enough
       matches (a word in more than ~2.5% of recent items): done.
    2. Otherwise the walk's hit rate estimates the matches left, and a small cost model picks
       the cheapest way on, at most _PG_STEPS times, re-estimating each time: walk on as far
       as the rate says the missing matches are; or a window: the GIN bitmap ANDed with the
       BRIN bitmap of the key range likely to hold 3 times the matches still needed (BRIN on
       key + 0, so that the btree cannot stand in for it; BRIN is cheap per row, and while
       rows are stored roughly in key order, as ingest and rebuild_index store them, only the
       window's heap pages are read); or step 3 at once, when few matches are left.
    3. One GIN bitmap scan for whatever is left (key + 0: GIN only), each match read for its key.

    psycopg prepares a statement run five times, and PostgreSQL may then plan it once for any
    values: a plan that cannot tell a rare word from 的 (or a narrow window from the whole
    table). So plan_cache_mode is force_custom_plan for these statements (and put back after).
    """
    q = tsquery(query)
    floor, newest, rows, plan_mode, _ = session.execute(
        text(
            "SELECT (SELECT key FROM search_docs WHERE key < :below ORDER BY key DESC OFFSET :skip LIMIT 1), "
            "(SELECT max(key) FROM search_docs WHERE key < :below), "
            "(SELECT reltuples FROM pg_class WHERE oid = CAST('search_docs' AS regclass)), "
            "current_setting('plan_cache_mode'), set_config('plan_cache_mode', 'force_custom_plan', true)"
        ),
        {"below": below, "skip": _PG_PROBE_ROWS - 1},
    ).one()
    try:
        return _find(session, query, q, n, below, floor, newest, rows)
    finally:
        session.execute(text("SELECT set_config('plan_cache_mode', :mode, true)"), {"mode": plan_mode})


def _find(
    session: Session,
    query: ParsedQuery,
    q: str,
    n: int,
    below: int,
    floor: int | None,
    newest: int | None,
    rows: float | None,
) -> list[int]:
    keys = _walk(session, q, n, below, floor if floor is not None else -1)
    if len(keys) >= n or floor is None or newest is None:
        return keys
    kind = (
        "prefix"
        if any(needle.prefix for needle in query.required)
        else "phrase"
        if any(len(needle.tokens) > 1 for needle in query.required)
        else "word"
    )
    key_span = max(1, (newest - floor) // _PG_PROBE_ROWS)  # key units per row, recently
    walked, hits, top = _PG_PROBE_ROWS, len(keys), floor
    for _ in range(_PG_STEPS):
        need = n - len(keys)
        rate = (hits + 1) / walked
        matches_left = rate * max(0.0, float(rows or 0) - walked)
        walk = _PG_WALK_ROW * 1.5 * need / rate
        window = (
            matches_left * _PG_GIN_MATCH[kind] + _PG_WINDOW_ROW * 3 * need / rate + _PG_WINDOW_MATCH * need
        )
        if matches_left * (_PG_GIN_MATCH[kind] + _PG_HEAP_MATCH) <= min(walk, window):
            break
        if window < walk:
            span = int(3 * need / rate) + 1
            low = max(top - span * key_span, -1)
            found = _gin_keys(session, q, need, top, low)
        else:
            span = int(1.5 * need / rate) + 1
            low = max(top - span * key_span, -1)
            found = _walk(session, q, need, top, low)
        keys += found
        if len(keys) >= n or low < 0:
            return keys
        walked, hits, top = walked + span, hits + len(found), low
    return keys + _gin_keys(session, q, n - len(keys), top)


def _gin_keys(session: Session, q: str, n: int, top: int, low: int | None = None) -> list[int]:
    """Keys of the newest n matches below top (and from low on) by the GIN index; with a low
    bound, key + 0 lets the BRIN index narrow the heap to that window."""
    params: dict[str, object] = {"q": q, "top": top, "n": n}
    window = ""
    if low is not None:
        window, params["low"] = " AND key + 0 >= :low", low
    rows = session.execute(
        text(
            f"SELECT key FROM search_docs WHERE tsv @@ CAST(:q AS tsquery) AND key + 0 < :top{window} "
            "ORDER BY key + 0 DESC LIMIT :n"
        ),
        params,
    )
    return [row[0] for row in rows]


def _walk(session: Session, q: str, n: int, below: int, floor: int) -> list[int]:
    """Keys of the first n matches walking back from below to floor (inclusive)."""
    return [
        row[0]
        for row in session.execute(
            text(
                "SELECT key FROM search_docs WHERE key < :below AND key >= :floor "
                "AND ts_match_vq(tsv, CAST(:q AS tsquery)) ORDER BY key DESC LIMIT :n"
            ),
            {"below": below, "floor": floor, "q": q, "n": n},
        )
    ]
