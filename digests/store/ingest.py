"""Ingest's SQL: documents, their items and item sources, and why a document failed.

Two write paths follow the same rules (``new_item_values``, ``item_changes``, ``revival_values``):
``write_documents`` updates documents' items in place by their keys through the ORM, many
documents a transaction (``write_document`` one);
``insert_new_documents`` writes a batch of new documents with bulk inserts (a first ingest's
fast path; on PostgreSQL through COPY, see ingest_postgres). Each calls the search index explicitly for the items it wrote, revived or removed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digests.errors import DigestError
from digests.items import ParsedItem
from digests.store import ingest_postgres, search
from digests.store.db import Database
from digests.store.models import Document, Item, ItemSource

# The item columns a document sets; re-reading a document compares exactly these.
ITEM_FIELDS = ("title", "url", "links", "summary", "commentary", "image", "source", "published_at",
               "tags", "category", "kind", "author")
# The fast path inserts through the tables, not the ORM's bulk layer: the same rows and types,
# without per-row ORM bookkeeping for objects nobody loads (Core on PostgreSQL, the driver with
# SQLAlchemy's bind processors on SQLite: see _insert_rows).
_DOCUMENTS = cast(Table, Document.__table__)
_PATHS_PER_QUERY = 500  # bound parameters of one IN (SQLite allows a few thousand at most)
_ITEMS = cast(Table, Item.__table__)


class StoredDocument(NamedTuple):
    """What ingest remembers of a stored document: whether to read it again."""

    id: int
    content_hash: str | None
    error: str | None


@dataclass(slots=True)
class ParsedDocument:
    """A document read and parsed, not yet written."""

    path: str
    digest: str
    size: int
    format: str
    item_count: int  # items the parser gave, repeated keys included
    items: list[tuple[str, ParsedItem]]  # (fingerprint, item), the first item of each key
    previous_id: int | None  # the stored document this one replaces


@dataclass(slots=True)
class ItemCounts:
    """What a committed write did to items."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicate: int = 0
    removed: int = 0


class StoreWriteError(DigestError):
    """A document's rows could not be written; the message names the database's reason."""


# ---------------------------------------------------------------------------------------------
# The rules both write paths follow


def new_item_values(parsed: ParsedItem, fingerprint: str, document_id: int, fmt: str,
                    now: datetime) -> dict[str, Any]:
    """The columns of a new item: the parsed fields, its identity and document, stamped now."""
    values: dict[str, Any] = {name: getattr(parsed, name) for name in ITEM_FIELDS}
    values.update(fingerprint=fingerprint, document_id=document_id, format=fmt, removed=False,
                  sort_at=parsed.published_at or now, created_at=now, updated_at=now)
    return values


def revival_values(now: datetime) -> dict[str, Any]:
    """An item back in the archive: live again, and new to selection."""
    return {"removed": False, "created_at": now, "updated_at": now}


def item_changes(item: Item, parsed: ParsedItem, now: datetime) -> dict[str, Any]:
    """The columns re-reading parsed changes in a stored item; empty when it is unchanged."""
    changes: dict[str, Any] = {}
    for name in ITEM_FIELDS:
        value = getattr(parsed, name)
        if getattr(item, name) != value:
            changes[name] = value
    sort_at = parsed.published_at or item.created_at or now
    if item.sort_at != sort_at:
        changes["sort_at"] = sort_at
    if item.removed:
        changes.update(revival_values(now))
    if changes:
        changes["updated_at"] = now
    return changes


def _not_stored(exc: Exception) -> StoreWriteError:
    first_line = (str(exc).splitlines() or [""])[0]
    return StoreWriteError(f"{exc.__class__.__name__}: {first_line}")


# ---------------------------------------------------------------------------------------------
# Documents


def stored_documents(db: Database, paths: Collection[str] | None = None) -> dict[str, StoredDocument]:
    """The stored documents by path: every one, or only those at these paths (looked up 500 at a time)."""
    query = select(Document.path, Document.id, Document.content_hash, Document.error)
    with db.session() as session:
        if paths is None:
            rows = list(session.execute(query))
        else:
            wanted = sorted(set(paths))
            rows = [row for n in range(0, len(wanted), _PATHS_PER_QUERY)
                    for row in session.execute(query.where(Document.path.in_(wanted[n:n + _PATHS_PER_QUERY])))]
        return {row.path: StoredDocument(row.id, row.content_hash, row.error) for row in rows}


def record_document_failure(db: Database, path: str, reason: str, digest: str | None,
                            previous: StoredDocument | None, now: datetime) -> StoredDocument:
    """Remember why a document failed; its previously stored items stay as they were."""
    with db.session() as session:
        document = session.get(Document, previous.id) if previous is not None else None
        if document is None:
            document = Document(path=path, ingested_at=now, size=0)
            session.add(document)
        document.error = reason
        document.updated_at = now
        if digest is not None and previous is None:
            document.content_hash = digest
        session.flush()
        return StoredDocument(document.id, document.content_hash, reason)


# ---------------------------------------------------------------------------------------------
# One document, items updated in place by their keys (the ORM path)


class WrittenDocument(NamedTuple):
    id: int
    is_new: bool
    counts: ItemCounts


def write_document(db: Database, doc: ParsedDocument, now: datetime) -> WrittenDocument:
    """One document in one transaction: its items added, updated, or removed when gone from it.

    Raises StoreWriteError when the database refuses the rows (nothing of the document is written).
    """
    return write_documents(db, [doc], now)[0]


def write_documents(db: Database, docs: Sequence[ParsedDocument], now: datetime) -> list[WrittenDocument]:
    """Documents in one transaction, each as write_document writes it, the search index once for all.

    Raises StoreWriteError when the database refuses the rows (nothing of the batch is written).
    """
    written: list[WrittenDocument] = []
    touched: list[Item] = []
    released: list[int] = []
    try:
        with db.session() as session:
            for doc in docs:
                written.append(_write_document(session, doc, now, touched, released))
            # Released first: an item one document let go and a later one took back is indexed again.
            search.unindex_items(session, released)
            if touched:
                session.flush()
                search.index_items(session, touched)  # what a later document released is taken out
    except (DigestError, SQLAlchemyError) as exc:
        raise _not_stored(exc) from exc
    return written


def _write_document(session: Session, doc: ParsedDocument, now: datetime, touched: list[Item],
                    released: list[int]) -> WrittenDocument:
    counts = ItemCounts()
    document = session.get(Document, doc.previous_id) if doc.previous_id is not None else None
    is_new = document is None
    if document is None:
        document = Document(path=doc.path, ingested_at=now)
        session.add(document)
    document.format = doc.format
    document.content_hash = doc.digest
    document.size = doc.size
    document.error = None
    document.item_count = doc.item_count
    document.updated_at = now
    session.flush()
    items, gone = _upsert_items(session, document.id, doc, counts, now)
    touched += items
    released += gone
    return WrittenDocument(document.id, is_new, counts)


def _upsert_items(session: Session, document_id: int, doc: ParsedDocument, counts: ItemCounts,
                  now: datetime) -> tuple[list[Item], list[int]]:
    """(items written or revived, ids of items no document holds any more)."""
    existing = {
        source.key: source
        for source in session.scalars(select(ItemSource).where(ItemSource.document_id == document_id))
    }
    prints = [fp for fp, _ in doc.items]
    items_by_print = {
        item.fingerprint: item for item in session.scalars(select(Item).where(Item.fingerprint.in_(prints)))
    } if prints else {}
    touched: list[Item] = []
    released: list[int] = []
    fresh: list[tuple[str, Item]] = []
    for fp, parsed in doc.items:
        key = parsed.key
        known_source = existing.get(key)
        item = items_by_print.get(fp)
        if known_source is not None and (item is None or item.id == known_source.item_id):
            current = item or session.get(Item, known_source.item_id)
            assert current is not None
            if current.fingerprint != fp:
                current.fingerprint = fp
            changes = item_changes(current, parsed, now)
            for name, value in changes.items():
                setattr(current, name, value)
            if changes:
                counts.updated += 1
                touched.append(current)
            else:
                counts.unchanged += 1
            continue
        if known_source is not None:  # the key now points at another, already stored item
            session.delete(known_source)
            session.flush()
            if _release(session, known_source.item_id, now):
                released.append(known_source.item_id)
        if item is not None:
            session.add(ItemSource(item_id=item.id, document_id=document_id, key=key))
            if item.removed:
                for name, value in revival_values(now).items():
                    setattr(item, name, value)
                touched.append(item)
            counts.duplicate += 1
            continue
        item = Item(**new_item_values(parsed, fp, document_id, doc.format, now))
        items_by_print[fp] = item
        fresh.append((key, item))
    if fresh:
        # one flush for every new item of the document: the ORM batches the INSERTs
        session.add_all([item for _key, item in fresh])
        session.flush()
        session.add_all([ItemSource(item_id=item.id, document_id=document_id, key=key) for key, item in fresh])
        counts.new += len(fresh)
        touched.extend(item for _key, item in fresh)
    kept = {parsed.key for _fp, parsed in doc.items}
    for key, source in existing.items():
        if key not in kept:
            session.delete(source)
            session.flush()
            if _release(session, source.item_id, now):
                released.append(source.item_id)
    counts.removed += len(released)
    return touched, released


def _release(session: Session, item_id: int, now: datetime) -> bool:
    """An item that lost a source: removed (True) when no document holds it any more."""
    still_held = session.scalar(select(ItemSource.id).where(ItemSource.item_id == item_id).limit(1))
    if still_held is not None:
        return False
    item = session.get(Item, item_id)
    if item is None or item.removed:
        return False
    item.removed = True
    item.updated_at = now
    return True


# ---------------------------------------------------------------------------------------------
# New documents, many per transaction, with bulk inserts (the fast path of a first ingest)


def insert_new_documents(db: Database, batch: list[ParsedDocument], now: datetime, *,
                         copy: bool = True) -> tuple[dict[str, int], ItemCounts]:
    """New documents in one transaction: (document id by path, what happened to items).

    copy: on PostgreSQL, rows through COPY with ids allocated up front (ingest_postgres); False
    is the INSERT path, kept as the baseline that tests and bench/ingest.py compare it with.
    Raises StoreWriteError when the database refuses the rows (nothing of the batch is written).
    """
    counts = ItemCounts()
    try:
        with db.session() as session:
            copy = copy and session.connection().dialect.name == "postgresql"
            ids = _insert_batch(session, batch, counts, now, copy=copy)
    except (DigestError, SQLAlchemyError, ingest_postgres.DRIVER_ERRORS) as exc:
        raise _not_stored(exc) from exc
    return ids, counts


def _insert_batch(session: Session, batch: list[ParsedDocument], counts: ItemCounts,
                  now: datetime, *, copy: bool) -> dict[str, int]:
    insert_rows = ingest_postgres.insert_with_ids if copy else _insert_rows
    rows = [{"path": p.path, "format": p.format, "content_hash": p.digest, "size": p.size,
             "item_count": p.item_count, "error": None, "ingested_at": now, "updated_at": now} for p in batch]
    doc_ids = dict(zip((p.path for p in batch), insert_rows(session, _DOCUMENTS, rows), strict=True))
    wanted = sorted({fp for p in batch for fp, _ in p.items})
    existing: dict[str, int] = {}
    revived_ids: list[int] = []
    for item_id, fp, removed in _items_by_fingerprint(session, wanted, copy=copy):
        existing[fp] = item_id
        if removed:  # a story coming back: revive it
            revived_ids.append(item_id)
    if revived_ids:
        session.execute(update(Item).where(Item.id.in_(revived_ids)).values(**revival_values(now)))
        revived = list(session.scalars(select(Item).where(Item.id.in_(revived_ids))))
        search.index_items(session, revived)
    new_rows: list[dict[str, Any]] = []
    new_items: list[tuple[str, ParsedItem]] = []  # (fingerprint, item) of each new row
    sources: list[tuple[str, int, str]] = []  # (fingerprint, document id, key)
    planned: set[str] = set()
    for prepared in batch:
        doc_id = doc_ids[prepared.path]
        for fp, parsed in prepared.items:
            sources.append((fp, doc_id, parsed.key))
            if fp in existing or fp in planned:
                counts.duplicate += 1
                continue
            planned.add(fp)
            new_rows.append(new_item_values(parsed, fp, doc_id, prepared.format, now))
            new_items.append((fp, parsed))
    if new_rows:
        existing.update(zip((fp for fp, _ in new_items), insert_rows(session, _ITEMS, new_rows), strict=True))
        counts.new += len(new_rows)
        search.index_new_items(session, [_index_row(existing[fp], item) for fp, item in new_items], bulk=copy)
    if sources:
        source_rows = [(existing[fp], doc_id, key) for fp, doc_id, key in sources]
        if copy:  # their ids from the column's default, one by one in row order, as the INSERT's
            ingest_postgres.copy_rows(session, "item_sources", ("item_id", "document_id", "key"), source_rows)
        else:
            _insert_item_sources(session, source_rows)
    return doc_ids


def _items_by_fingerprint(session: Session, fingerprints: list[str], *,
                          copy: bool) -> list[tuple[int, str, bool]]:
    """(id, fingerprint, removed) of the stored items with these fingerprints."""
    if copy:
        return ingest_postgres.items_by_fingerprint(session, fingerprints)
    return [
        (row[0], row[1], row[2])
        for offset in range(0, len(fingerprints), _PATHS_PER_QUERY)
        for row in session.execute(select(Item.id, Item.fingerprint, Item.removed)
                                   .where(Item.fingerprint.in_(fingerprints[offset:offset + _PATHS_PER_QUERY])))
    ]


def _insert_item_sources(session: Session, rows: list[tuple[int, int, str]]) -> None:
    """(item id, document id, key) rows, straight to the driver, as the search rows: three plain
    columns, no type to process, and SQLAlchemy's per-row parameter handling cost as much as the
    database's insert."""
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    connection.exec_driver_sql(
        f'INSERT INTO item_sources (item_id, document_id, "key") VALUES ({mark}, {mark}, {mark})', rows,
    )


def _insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows (dicts with the same keys) into a table with an integer id; their ids, in order.

    PostgreSQL: one INSERT ... RETURNING through SQLAlchemy. SQLite: the rows go to the driver as
    tuples with ids numbered here from MAX(id) + 1, each value converted by SQLAlchemy's own bind
    processor for its column (so stored exactly as the ORM stores it): SQLAlchemy's per-row
    statement machinery cost twice the database's insert. SQLite has one writer at a time: a row
    another connection commits between the MAX(id) and this insert makes the insert fail (a
    stale snapshot or a duplicate id), and the batch is then written again one document at a time.
    """
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "sqlite":
        inserted = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        return [row[0] for row in inserted]
    columns = [table.c[name] for name in rows[0]]
    processors = [(column.name, column.type.dialect_impl(dialect).bind_processor(dialect)) for column in columns]
    first = connection.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table.name}").scalar_one()
    names = ", ".join(f'"{column.name}"' for column in columns)
    connection.exec_driver_sql(
        f"INSERT INTO {table.name} (id, {names}) VALUES (?{', ?' * len(columns)})",
        [(first + n, *[process(row[name]) if process else row[name] for name, process in processors])
         for n, row in enumerate(rows)],
    )
    return list(range(first, first + len(rows)))


@dataclass(slots=True)
class _IndexRow:
    """What the search index reads of a freshly inserted item."""

    id: int
    title: str
    summary: str
    commentary: str
    source: str
    tags: list[str]
    published_at: datetime | None


def _index_row(item_id: int, item: ParsedItem) -> _IndexRow:
    return _IndexRow(item_id, item.title, item.summary, item.commentary, item.source, item.tags,
                     item.published_at)
