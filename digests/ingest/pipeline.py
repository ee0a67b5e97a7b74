"""The ingest pipeline: read each source, skip what is unchanged, parse, normalise, then store in batches."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from digests.clock import utcnow
from digests.ingest.parsing import Failed, Parsed, Unchanged, outcomes
from digests.ingest.walk import Source, iter_sources
from digests.store.db import Database
from digests.store.ingest import (
    ItemCounts,
    ParsedDocument,
    StoredDocument,
    StoreWriteError,
    insert_new_documents,
    record_document_failure,
    stored_documents,
    write_document,
    write_documents,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# New documents written per transaction on the fast path, or fewer when their items reach
# _BATCH_ITEMS. FTS5 writes a segment per transaction (its 16 MB pending-terms hash holds about
# 5,000 of the archive's documents) and merges segments into larger ones as they accumulate, so
# the terms of a big first ingest are written once rather than again and again: 5% fewer
# instructions over 10,000 documents than 1,000 a transaction, for ~40 MB more memory.
_BATCH_DOCUMENTS = 5000
_BATCH_ITEMS = 20_000
# Changed documents written per transaction (or fewer when their items reach _BATCH_ITEMS): their
# items go through the ORM, which keeps each one in the session until the commit. One transaction
# a document cost ~27 ms each at 10,000 documents stored, most of it the commit and the index.
_BATCH_UPDATES = 500


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

    def merge(self, counts: ItemCounts) -> None:
        """Add the item counts of a committed transaction."""
        self.items_new += counts.new
        self.items_updated += counts.updated
        self.items_unchanged += counts.unchanged
        self.items_duplicate += counts.duplicate
        self.items_removed += counts.removed

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


def ingest(
    db: Database,
    paths: Iterable[str | Path],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[str], None] | None = None,
    now: Callable[[], datetime] = utcnow,
    jobs: int = 1,
    copy: bool = True,
) -> IngestReport:
    """Ingest every document below paths; a bad document is recorded and skipped, never fatal.

    New documents are written in batches, and changed ones updated in place in batches of their
    own (a document is never written in part: a batch that fails is written again one document
    per transaction, so only the bad one is lost). ``jobs`` worker processes parse (1: this
    process alone), and what is stored is the same whatever their number. ``copy`` False writes
    new documents on PostgreSQL with INSERTs instead of COPY (the old path, kept to compare).
    """
    return ingest_entries(db, iter_sources(paths), max_bytes=max_bytes, progress=progress, now=now,
                          jobs=jobs, copy=copy)


def ingest_entries(
    db: Database,
    entries: Iterable[Source | tuple[str, str]],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[str], None] | None = None,
    now: Callable[[], datetime] = utcnow,
    tags: Sequence[str] = (),
    jobs: int = 1,
    copy: bool = True,
) -> IngestReport:
    """Ingest documents given as entries (fetched bytes under a stable path, or (path, reason) for
    one that could not be had), as ``ingest`` does files; ``tags`` are added to every item.

    A list of entries is looked up by its paths alone, not against every stored document.
    """
    with _collector_at_rest():
        return _ingest(db, entries, max_bytes=max_bytes, progress=progress, now=now, tags=tags,
                       jobs=jobs, copy=copy)


@contextmanager
def _collector_at_rest() -> Iterator[None]:
    """Parsing makes millions of short-lived objects and no garbage cycles: leave what already
    exists out of the collector's full passes while an ingest runs (bench: 5-8% of an ingest)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _path_of(entry: Source | tuple[str, str]) -> str:
    return entry[0] if isinstance(entry, tuple) else entry.path


def _unique(entries: Iterable[Source | tuple[str, str]]) -> Iterator[Source | tuple[str, str]]:
    """A path named twice (a folder and a file in it) is read once."""
    seen: set[str] = set()
    for entry in entries:
        if _path_of(entry) not in seen:
            seen.add(_path_of(entry))
            yield entry


def _ingest(db: Database, entries: Iterable[Source | tuple[str, str]], *, max_bytes: int,
            progress: Callable[[str], None] | None, now: Callable[[], datetime],
            tags: Sequence[str] = (), jobs: int = 1, copy: bool = True) -> IngestReport:
    report = IngestReport()
    known = stored_documents(db, [_path_of(e) for e in entries] if isinstance(entries, list) else None)
    unchanged = {path: doc.content_hash for path, doc in known.items() if doc.error is None and doc.content_hash}
    batch: list[ParsedDocument] = []
    batch_items = 0
    updates: list[ParsedDocument] = []
    update_items = 0
    for path, outcome in outcomes(_unique(entries), unchanged, max_bytes=max_bytes, tags=tags, jobs=jobs):
        if isinstance(outcome, Unchanged):
            report.documents_unchanged += 1
        elif isinstance(outcome, Failed):
            _record_failure(db, report, path, outcome.reason, outcome.digest, known, now())
        else:
            prepared = _prepared(path, outcome, known.get(path))
            if prepared.previous_id is None:
                batch.append(prepared)
                batch_items += prepared.item_count
                if len(batch) >= _BATCH_DOCUMENTS or batch_items >= _BATCH_ITEMS:
                    _write_batch(db, batch, report, known, now(), copy=copy)
                    batch, batch_items = [], 0
            else:
                updates.append(prepared)
                update_items += prepared.item_count
                if len(updates) >= _BATCH_UPDATES or update_items >= _BATCH_ITEMS:
                    _write_updates(db, updates, report, known, now())
                    updates, update_items = [], 0
        if progress is not None:
            progress(path)
    if updates:
        _write_updates(db, updates, report, known, now())
    if batch:
        _write_batch(db, batch, report, known, now(), copy=copy)
    return report


def _prepared(path: str, parsed: Parsed, previous: StoredDocument | None) -> ParsedDocument:
    fmt, item_count, items = parsed.result
    return ParsedDocument(path, parsed.digest, parsed.size, fmt, item_count, items,
                          previous.id if previous is not None else None)


def _count_document(report: IngestReport, prepared: ParsedDocument, *, is_new: bool) -> None:
    if is_new:
        report.documents_new += 1
    else:
        report.documents_updated += 1
    if not prepared.items:
        report.documents_empty += 1
        report.empty.append(prepared.path)


def _write_one(db: Database, prepared: ParsedDocument, report: IngestReport,
               known: dict[str, StoredDocument], now: datetime) -> None:
    """One document in one transaction, items updated in place by their keys."""
    try:
        written = write_document(db, prepared, now)
    except StoreWriteError as exc:
        _record_failure(db, report, prepared.path, f"could not be stored: {exc}", prepared.digest, known, now)
        return
    known[prepared.path] = StoredDocument(written.id, prepared.digest, None)
    report.merge(written.counts)
    _count_document(report, prepared, is_new=written.is_new)


def _write_updates(db: Database, updates: list[ParsedDocument], report: IngestReport,
                   known: dict[str, StoredDocument], now: datetime) -> None:
    """Changed documents, many per transaction, their items updated in place by their keys."""
    if len(updates) == 1:
        _write_one(db, updates[0], report, known, now)
        return
    try:
        written = write_documents(db, updates, now)
    except StoreWriteError as exc:
        log.info("batch of %d changed documents failed (%s); writing them one by one", len(updates), exc)
        for prepared in updates:
            _write_one(db, prepared, report, known, now)
        return
    for prepared, done in zip(updates, written, strict=True):
        known[prepared.path] = StoredDocument(done.id, prepared.digest, None)
        report.merge(done.counts)
        _count_document(report, prepared, is_new=done.is_new)


def _write_batch(db: Database, batch: list[ParsedDocument], report: IngestReport,
                 known: dict[str, StoredDocument], now: datetime, *, copy: bool = True) -> None:
    """New documents, many per transaction (the fast path of a first ingest)."""
    try:
        ids, counts = insert_new_documents(db, batch, now, copy=copy)
    except StoreWriteError as exc:
        log.info("batch of %d documents failed (%s); writing them one by one", len(batch), exc)
        for prepared in batch:
            _write_one(db, prepared, report, known, now)
        return
    report.merge(counts)
    for prepared in batch:
        known[prepared.path] = StoredDocument(ids[prepared.path], prepared.digest, None)
        _count_document(report, prepared, is_new=True)


def _record_failure(db: Database, report: IngestReport, path: str, reason: str, digest: str | None,
                    known: dict[str, StoredDocument], now: datetime) -> None:
    """Report why a document failed and remember it; its previously stored items stay as they were."""
    log.warning("skipped %s: %s", path, reason)
    report.documents_failed += 1
    report.failures.append((path, reason))
    known[path] = record_document_failure(db, path, reason, digest, known.get(path), now)
