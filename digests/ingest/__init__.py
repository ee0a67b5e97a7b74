"""Ingest: walk files, folders and archives; detect, decode, parse, normalise, dedupe, upsert."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digests import search
from digests.errors import DigestError, ParseError
from digests.ingest.normalize import fingerprint, normalise_item
from digests.items import ParsedItem
from digests.parsers import parse_document
from digests.store.db import Database
from digests.store.models import Document, Item, ItemSource, utcnow

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_ITEM_FIELDS = ("title", "url", "links", "summary", "commentary", "image", "source", "published_at",
                "tags", "category", "kind", "author")


@dataclass(slots=True)
class Source:
    """One document to ingest: where it is (a path, or archive!member) and how to read it."""

    path: str
    size: int
    read: Callable[[], bytes]


@dataclass
class IngestReport:
    documents_new: int = 0
    documents_unchanged: int = 0
    documents_updated: int = 0
    documents_failed: int = 0
    documents_empty: int = 0
    items_new: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    items_duplicate: int = 0
    items_removed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        """Add the item counts of a committed transaction."""
        for name in ("items_new", "items_updated", "items_unchanged", "items_duplicate", "items_removed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def documents_seen(self) -> int:
        return self.documents_new + self.documents_unchanged + self.documents_updated + self.documents_failed

    def as_dict(self) -> dict[str, object]:
        return {
            "documents": {
                "new": self.documents_new, "unchanged": self.documents_unchanged,
                "updated": self.documents_updated, "failed": self.documents_failed,
                "without_items": self.documents_empty,
            },
            "items": {
                "new": self.items_new, "updated": self.items_updated, "unchanged": self.items_unchanged,
                "duplicate": self.items_duplicate, "removed": self.items_removed,
            },
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "without_items": self.empty,
        }


# ---------------------------------------------------------------------------------------------
# Walking: files, folders, .zip and .tar archives


def _is_archive(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in Path(name).parts if part not in (".", ".."))


def _zip_sources(path: Path) -> Iterator[Source | tuple[str, str]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield (str(path), f"not a readable zip archive: {exc}")
        return
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir() or _hidden(info.filename):
                continue
            yield Source(f"{path}!{info.filename}", info.file_size,
                         partial(_read_zip_member, path, info.filename))


def _read_zip_member(archive: Path, name: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        return zf.read(name)


def _tar_sources(path: Path) -> Iterator[Source | tuple[str, str]]:
    try:
        archive = tarfile.open(path)  # noqa: SIM115  (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        yield (str(path), f"not a readable tar archive: {exc}")
        return
    with archive:
        try:
            members = sorted((m for m in archive.getmembers() if m.isfile()), key=lambda m: m.name)
        except (tarfile.TarError, OSError, EOFError) as exc:
            yield (str(path), f"broken tar archive: {exc}")
            return
        for member in members:
            if _hidden(member.name):
                continue
            # read() is called while this generator is suspended, so the archive is still open.
            yield Source(f"{path}!{member.name}", member.size,
                         partial(_read_tar_member, archive, member))


def _read_tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = archive.extractfile(member)
    return extracted.read() if extracted is not None else b""


def iter_sources(paths: Iterable[str | Path]) -> Iterator[Source | tuple[str, str]]:
    """Every document below paths, in a stable order; (path, reason) for what cannot be opened."""
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.is_dir():
            # Plain strings from here on: a Path per file cost as much as reading a small file.
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    yield from _file_sources(os.path.join(dirpath, name))
        elif path.exists():
            yield from _file_sources(str(path))
        else:
            yield (str(path), "no such file or directory")


def _file_sources(path: str) -> Iterator[Source | tuple[str, str]]:
    if _is_archive(path):
        yield from (_zip_sources(Path(path)) if path.lower().endswith(".zip") else _tar_sources(Path(path)))
        return
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        yield (path, f"cannot read: {exc.strerror}")
        return
    yield Source(path, size, partial(_read_file, path))


def _read_file(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_document(data: bytes) -> str:
    """Text of a document: UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030/GBK."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ParseError("not valid UTF-16 text") from None
    if b"\x00" in data[:8192]:
        raise ParseError("binary data, not a text document")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise ParseError("binary data, not text in UTF-8 or GB18030/GBK") from None
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\r\n\t")
    if controls > 8:
        raise ParseError("binary data, not a text document")
    return text


# ---------------------------------------------------------------------------------------------
# Storing


class _Upserter:
    """Writes one document's items; knows which keys and fingerprints already exist."""

    def __init__(self, session: Session, document: Document, fmt: str, report: IngestReport,
                 now: datetime) -> None:
        self.session = session
        self.document = document
        self.format = fmt
        self.report = report
        self.now = now

    def apply(self, parsed: list[ParsedItem]) -> list[Item]:
        session, document = self.session, self.document
        existing: dict[str, ItemSource] = {}
        if document.id is not None:
            for source in session.scalars(select(ItemSource).where(ItemSource.document_id == document.id)):
                existing[source.key] = source
        prints = _fingerprints(parsed)
        items_by_print = {
            item.fingerprint: item
            for item in session.scalars(select(Item).where(Item.fingerprint.in_(list(prints.values()))))
        } if prints else {}
        touched: list[Item] = []
        fresh: list[tuple[str, Item]] = []
        seen_keys: set[str] = set()
        for parsed_item in parsed:
            key = parsed_item.key
            if key in seen_keys:
                continue
            seen_keys.add(key)
            fp = prints[key]
            known_source = existing.get(key)
            item = items_by_print.get(fp)
            if known_source is not None and (item is None or item.id == known_source.item_id):
                current = item or session.get(Item, known_source.item_id)
                assert current is not None
                if current.fingerprint != fp:
                    current.fingerprint = fp
                if self._update(current, parsed_item):
                    self.report.items_updated += 1
                    touched.append(current)
                else:
                    self.report.items_unchanged += 1
                continue
            if known_source is not None:  # the key now points at another, already stored item
                session.delete(known_source)
                session.flush()
                self._release(known_source.item_id)
            if item is not None:
                session.add(ItemSource(item_id=item.id, document_id=document.id, key=key))
                if item.removed:
                    item.removed = False
                    item.created_at = self.now  # back in the archive: selection sees it as new
                    touched.append(item)
                self.report.items_duplicate += 1
                continue
            item = Item(fingerprint=fp, document_id=document.id, format=self.format,
                        created_at=self.now, updated_at=self.now)
            self._update(item, parsed_item)
            items_by_print[fp] = item
            fresh.append((key, item))
        if fresh:
            # one flush for every new item of the document: the ORM batches the INSERTs
            session.add_all([item for _key, item in fresh])
            session.flush()
            session.add_all([ItemSource(item_id=item.id, document_id=document.id, key=key) for key, item in fresh])
            self.report.items_new += len(fresh)
            touched.extend(item for _key, item in fresh)
        for key, source in existing.items():
            if key not in seen_keys:
                session.delete(source)
                session.flush()
                self._release(source.item_id)
        return touched

    def _update(self, item: Item, parsed: ParsedItem) -> bool:
        changed = False
        for name in _ITEM_FIELDS:
            value = getattr(parsed, name)
            if getattr(item, name) != value:
                setattr(item, name, value)
                changed = True
        sort_at = parsed.published_at or item.created_at or self.now
        if item.sort_at != sort_at:
            item.sort_at = sort_at
            changed = True
        if item.removed:
            item.removed = False
            item.created_at = self.now  # back in the archive: selection sees it as new
            changed = True
        if changed and item.id is not None:
            item.updated_at = self.now
        return changed

    def _release(self, item_id: int) -> None:
        """An item that lost a source: removed when no document holds it any more."""
        still_held = self.session.scalar(select(ItemSource.id).where(ItemSource.item_id == item_id).limit(1))
        if still_held is None:
            item = self.session.get(Item, item_id)
            if item is not None and not item.removed:
                item.removed = True
                item.updated_at = self.now
                search.unindex_items(self.session, [item_id])
                self.report.items_removed += 1


def _fingerprints(parsed: list[ParsedItem]) -> dict[str, str]:
    """key -> fingerprint; items of one document that share a URL stay distinct items."""
    prints: dict[str, str] = {}
    used: set[str] = set()
    for item in parsed:
        fp = fingerprint(item)
        if fp in used:
            fp = hashlib.sha1(f"{fp}|{item.key}".encode()).hexdigest()
        used.add(fp)
        prints.setdefault(item.key, fp)
    return prints


# New documents written per transaction on the fast path, or fewer when their items reach
# _BATCH_ITEMS. FTS5 writes a segment per transaction (its 16 MB pending-terms hash holds about
# 5,000 of the archive's documents) and merges segments into larger ones as they accumulate, so
# the terms of a big first ingest are written once rather than again and again: 5% fewer
# instructions over 10,000 documents than 1,000 a transaction, for ~40 MB more memory.
_BATCH_DOCUMENTS = 5000
_BATCH_ITEMS = 20_000
# The fast path inserts through the tables, not the ORM's bulk layer: the same rows and types,
# without per-row ORM bookkeeping for objects nobody loads (Core on PostgreSQL, the driver with
# SQLAlchemy's bind processors on SQLite: see _insert_rows).
_DOCUMENTS = cast(Table, Document.__table__)
_ITEMS = cast(Table, Item.__table__)


@dataclass(slots=True)
class _Prepared:
    """A document read and parsed, not yet written."""

    path: str
    digest: str
    size: int
    format: str
    items: list[ParsedItem]
    previous_id: int | None


def ingest(
    db: Database,
    paths: Iterable[str | Path],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[str], None] | None = None,
    now: Callable[[], datetime] = utcnow,
) -> IngestReport:
    """Ingest every document below paths; a bad document is recorded and skipped, never fatal.

    New documents are written in batches (a document is never written in part: a batch that
    fails is written again one document per transaction, so only the bad one is lost); changed
    documents are updated in place one transaction each.
    """
    return ingest_entries(db, iter_sources(paths), max_bytes=max_bytes, progress=progress, now=now)


def ingest_entries(
    db: Database,
    entries: Iterable[Source | tuple[str, str]],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[str], None] | None = None,
    now: Callable[[], datetime] = utcnow,
    tags: Sequence[str] = (),
) -> IngestReport:
    """Ingest documents given as entries (fetched bytes under a stable path, or (path, reason) for
    one that could not be had), as ``ingest`` does files; ``tags`` are added to every item.

    A list of entries is looked up by its paths alone, not against every stored document.
    """
    with _collector_at_rest():
        return _ingest(db, entries, max_bytes=max_bytes, progress=progress, now=now, tags=tags)


@contextmanager
def _collector_at_rest() -> Iterator[None]:
    """Parsing makes millions of short-lived objects and no garbage cycles: leave what already
    exists out of the collector's full passes while an ingest runs (bench: 5-8% of an ingest)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _ingest(db: Database, entries: Iterable[Source | tuple[str, str]], *, max_bytes: int,
            progress: Callable[[str], None] | None, now: Callable[[], datetime], tags: Sequence[str] = ()) -> IngestReport:
    report = IngestReport()
    with db.session() as session:
        query = select(Document.path, Document.id, Document.content_hash, Document.error)
        wanted = sorted({e[0] if isinstance(e, tuple) else e.path for e in entries}) if isinstance(entries, list) else None
        rows = (session.execute(query) if wanted is None else
                [row for n in range(0, len(wanted), 500)
                 for row in session.execute(query.where(Document.path.in_(wanted[n:n + 500])))])
        known = {row.path: (row.id, row.content_hash, row.error) for row in rows}
    batch: list[_Prepared] = []
    batch_items = 0
    seen: set[str] = set()  # a path named twice (a folder and a file in it) is read once
    for entry in entries:
        if (entry[0] if isinstance(entry, tuple) else entry.path) in seen:
            continue
        seen.add(entry[0] if isinstance(entry, tuple) else entry.path)
        if isinstance(entry, tuple):
            path, reason = entry
            _record_failure(db, report, path, reason, None, known, now())
        else:
            path = entry.path
            prepared = _prepare(db, entry, report, known, max_bytes, now(), tags)
            if prepared is not None:
                if prepared.previous_id is None:
                    batch.append(prepared)
                    batch_items += len(prepared.items)
                    if len(batch) >= _BATCH_DOCUMENTS or batch_items >= _BATCH_ITEMS:
                        _write_batch(db, batch, report, known, now())
                        batch, batch_items = [], 0
                else:
                    _write_one(db, prepared, report, known, now())
        if progress is not None:
            progress(path)
    if batch:
        _write_batch(db, batch, report, known, now())
    return report


def _prepare(db: Database, source: Source, report: IngestReport,
             known: dict[str, tuple[int, str | None, str | None]], max_bytes: int, now: datetime,
             tags: Sequence[str] = ()) -> _Prepared | None:
    """Read, hash, decode and parse one document; None when it is unchanged or failed."""
    if source.size > max_bytes:
        reason = (f"too large: {source.size / 1048576:.1f} MB, the limit is {max_bytes / 1048576:.1f} MB "
                  "(archive.max_document_bytes)")
        _record_failure(db, report, source.path, reason, None, known, now)
        return None
    try:
        data = source.read()
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        _record_failure(db, report, source.path, f"cannot read: {exc}", None, known, now)
        return None
    digest = hashlib.sha256(data).hexdigest()
    previous = known.get(source.path)
    if previous is not None and previous[1] == digest and previous[2] is None:
        report.documents_unchanged += 1
        return None
    try:
        text = decode_document(data)
        fmt, parsed = parse_document(text, path=source.path)
        parsed = [normalise_item(item) for item in parsed]
        parsed = [item for item in parsed if item.title and item.url]
        for item in parsed if tags else ():  # after normalising, which keeps only a column's own tags
            item.tags = [*item.tags, *(tag for tag in tags if tag not in item.tags)]
    except ParseError as exc:
        _record_failure(db, report, source.path, str(exc), digest, known, now)
        return None
    except RecursionError:
        _record_failure(db, report, source.path, "document is nested too deeply to parse", digest, known, now)
        return None
    return _Prepared(source.path, digest, len(data), fmt, parsed, previous[0] if previous is not None else None)


def _count_document(report: IngestReport, prepared: _Prepared, *, is_new: bool) -> None:
    if is_new:
        report.documents_new += 1
    else:
        report.documents_updated += 1
    if not prepared.items:
        report.documents_empty += 1
        report.empty.append(prepared.path)


def _write_one(db: Database, prepared: _Prepared, report: IngestReport,
               known: dict[str, tuple[int, str | None, str | None]], now: datetime) -> None:
    """One document in one transaction, items updated in place by their keys (the ORM path)."""
    delta = IngestReport()
    try:
        with db.session() as session:
            document = session.get(Document, prepared.previous_id) if prepared.previous_id is not None else None
            is_new = document is None
            if document is None:
                document = Document(path=prepared.path, ingested_at=now)
                session.add(document)
            document.format = prepared.format
            document.content_hash = prepared.digest
            document.size = prepared.size
            document.error = None
            document.item_count = len(prepared.items)
            document.updated_at = now
            session.flush()
            touched = _Upserter(session, document, prepared.format, delta, now).apply(prepared.items)
            if touched:
                session.flush()
                search.index_items(session, touched)
            document_id = document.id
    except (DigestError, SQLAlchemyError) as exc:
        reason = f"could not be stored: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        _record_failure(db, report, prepared.path, reason, prepared.digest, known, now)
        return
    known[prepared.path] = (document_id, prepared.digest, None)
    report.merge(delta)
    _count_document(report, prepared, is_new=is_new)


def _write_batch(db: Database, batch: list[_Prepared], report: IngestReport,
                 known: dict[str, tuple[int, str | None, str | None]], now: datetime) -> None:
    """New documents, many per transaction, with bulk INSERTs (the fast path of a first ingest)."""
    delta = IngestReport()
    try:
        with db.session() as session:
            ids = _insert_new_documents(session, batch, delta, now)
    except (DigestError, SQLAlchemyError) as exc:
        log.info("batch of %d documents failed (%s); writing them one by one", len(batch), exc)
        for prepared in batch:
            _write_one(db, prepared, report, known, now)
        return
    report.merge(delta)
    for prepared in batch:
        known[prepared.path] = (ids[prepared.path], prepared.digest, None)
        _count_document(report, prepared, is_new=True)


def _insert_new_documents(session: Session, batch: list[_Prepared], report: IngestReport,
                          now: datetime) -> dict[str, int]:
    rows = [{"path": p.path, "format": p.format, "content_hash": p.digest, "size": p.size,
             "item_count": len(p.items), "error": None, "ingested_at": now, "updated_at": now} for p in batch]
    doc_ids = dict(zip((p.path for p in batch), _insert_rows(session, _DOCUMENTS, rows), strict=True))
    prints = {p.path: _fingerprints(p.items) for p in batch}
    wanted = sorted({fp for per_doc in prints.values() for fp in per_doc.values()})
    existing: dict[str, int] = {}
    for offset in range(0, len(wanted), 500):
        chunk = wanted[offset:offset + 500]
        for item_id, fp, removed in session.execute(
            select(Item.id, Item.fingerprint, Item.removed).where(Item.fingerprint.in_(chunk))
        ):
            existing[fp] = item_id
            if removed:  # a story coming back: revive it
                session.execute(update(Item).where(Item.id == item_id).values(removed=False, updated_at=now,
                                                                                 created_at=now))
                revived = session.get(Item, item_id)
                if revived is not None:
                    search.index_items(session, [revived])
    new_rows: list[dict[str, object]] = []
    new_items: list[tuple[str, ParsedItem]] = []  # (fingerprint, item) of each new row
    sources: list[tuple[str, int, str]] = []  # (fingerprint, document id, key)
    planned: set[str] = set()
    for prepared in batch:
        seen_keys: set[str] = set()
        for parsed in prepared.items:
            if parsed.key in seen_keys:
                continue
            seen_keys.add(parsed.key)
            fp = prints[prepared.path][parsed.key]
            sources.append((fp, doc_ids[prepared.path], parsed.key))
            if fp in existing or fp in planned:
                report.items_duplicate += 1
                continue
            planned.add(fp)
            row: dict[str, object] = {name: getattr(parsed, name) for name in _ITEM_FIELDS}
            row.update(fingerprint=fp, document_id=doc_ids[prepared.path], format=prepared.format, removed=False,
                       sort_at=parsed.published_at or now, created_at=now, updated_at=now)
            new_rows.append(row)
            new_items.append((fp, parsed))
    if new_rows:
        existing.update(zip((fp for fp, _ in new_items), _insert_rows(session, _ITEMS, new_rows), strict=True))
        report.items_new += len(new_rows)
        search.index_new_items(session, [
            _IndexRow(existing[fp], item.title, item.summary, item.commentary, item.source, item.tags,
                      item.published_at)
            for fp, item in new_items
        ])
    if sources:
        # Straight to the driver, as the search rows: three plain columns, no type to process, and
        # SQLAlchemy's per-row parameter handling cost as much as the database's insert.
        connection = session.connection()
        mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        connection.exec_driver_sql(
            f'INSERT INTO item_sources (item_id, document_id, "key") VALUES ({mark}, {mark}, {mark})',
            [(existing[fp], doc_id, key) for fp, doc_id, key in sources],
        )
    return doc_ids


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


def _record_failure(db: Database, report: IngestReport, path: str, reason: str, digest: str | None,
                    known: dict[str, tuple[int, str | None, str | None]], now: datetime) -> None:
    """Remember why a document failed; its previously stored items stay as they were."""
    log.warning("skipped %s: %s", path, reason)
    report.documents_failed += 1
    report.failures.append((path, reason))
    with db.session() as session:
        previous = known.get(path)
        document = session.get(Document, previous[0]) if previous is not None else None
        if document is None:
            document = Document(path=path, ingested_at=now, size=0)
            session.add(document)
        document.error = reason
        document.updated_at = now
        if digest is not None and previous is None:
            document.content_hash = digest
        session.flush()
        known[path] = (document.id, document.content_hash, reason)
