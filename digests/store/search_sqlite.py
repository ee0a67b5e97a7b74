"""The search index on SQLite: FTS5 over the external-content table search_docs.

FTS5 uses the ``ascii`` tokenizer (every non-ASCII character is a token character), so it splits
exactly where the token text has spaces. Its rowid is the recency key: FTS5 walks a posting list
backwards from the newest and stops, so the newest matches of a common word cost no more than a
rare word's. Inserts go to both tables from here, triggers do deletes (migrations 0002, 0003).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from digests.search.entries import SearchDoc
from digests.search.query import Needle, ParsedQuery


def _chunks(ids: Sequence[int], size: int = 500) -> Iterable[list[int]]:
    """ids in slices small enough for SQLite's limit on bound parameters."""
    ids = list(ids)
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _fts5_phrase(needle: Needle) -> str:
    quoted = '"' + " ".join(needle.tokens).replace('"', '""') + '"'
    return quoted + " *" if needle.prefix else quoted


def fts5_match(query: ParsedQuery) -> str:
    """The FTS5 MATCH expression of a query: its needles as quoted strings, nothing else."""
    expression = " AND ".join(_fts5_phrase(needle) for needle in query.required)
    if query.forbidden:
        expression = f"({expression}) NOT ({' OR '.join(_fts5_phrase(n) for n in query.forbidden)})"
    return expression


def stored(session: Session, item_ids: Sequence[int]) -> dict[int, tuple[int, str, str]]:
    query = text("SELECT item_id, key, title, body FROM search_docs WHERE item_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    return {
        row[0]: (row[1], row[2], row[3])
        for chunk in _chunks(item_ids)
        for row in session.execute(query, {"ids": chunk})
    }


def is_empty(session: Session) -> bool:
    return session.execute(text("SELECT 1 FROM search_docs LIMIT 1")).first() is None


def delete(session: Session, item_ids: Sequence[int]) -> None:
    # The delete trigger tells FTS5 which tokens to drop, from the row's stored text.
    query = text("DELETE FROM search_docs WHERE item_id IN :ids").bindparams(bindparam("ids", expanding=True))
    for chunk in _chunks(item_ids):
        session.execute(query, {"ids": chunk})


def insert(session: Session, docs: Sequence[SearchDoc]) -> None:
    # The text row and its FTS5 entry in the same transaction, both from here: a trigger would
    # make FTS5 write a segment per row (migration 0003).
    # Straight to the driver: plain ints and strings need none of SQLAlchemy's per-row
    # parameter processing, and an ingest sends two rows per item.
    connection = session.connection()
    connection.exec_driver_sql(
        "INSERT INTO search_docs (key, item_id, title, body) VALUES (?, ?, ?, ?)",
        [(d.key, d.item_id, d.title, d.body) for d in docs],
    )
    connection.exec_driver_sql(
        "INSERT INTO search_fts (rowid, title, body) VALUES (?, ?, ?)", [(d.key, d.title, d.body) for d in docs]
    )


# SQLite's driver inserts are its bulk path already.
bulk_insert = insert


def clear(session: Session) -> None:
    # Row by row through the trigger (a 'delete-all' first would leave the trigger's deletes
    # pointing at nothing), then 'delete-all' drops anything the index held beyond the table.
    session.execute(text("DELETE FROM search_docs"))
    session.execute(text("INSERT INTO search_fts (search_fts) VALUES ('delete-all')"))


def newest_keys(session: Session, query: ParsedQuery, n: int, below: int) -> list[int]:
    rows = session.execute(
        text(
            "SELECT rowid FROM search_fts WHERE search_fts MATCH :match AND rowid < :below "
            "ORDER BY rowid DESC LIMIT :n"
        ),
        {"match": fts5_match(query), "below": below, "n": n},
    )
    return [row[0] for row in rows]


def newest_texts(session: Session, query: ParsedQuery, n: int) -> list[tuple[int, str, str]]:
    """(key, title, body) of the n newest matches; FTS5 reads the text from search_docs."""
    rows = session.execute(
        text(
            "SELECT rowid, title, body FROM search_fts WHERE search_fts MATCH :match "
            "ORDER BY rowid DESC LIMIT :n"
        ),
        {"match": fts5_match(query), "n": n},
    )
    return [(row[0], row[1], row[2]) for row in rows]
