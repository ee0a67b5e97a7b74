"""Documents that left their source (a file deleted from a folder or a repository): their items go too."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from digests.store import search
from digests.store.models import Document, Item, ItemSource

_CHUNK = 500


def document_paths_under(session: Session, prefix: str) -> list[str]:
    """The stored document paths that start with prefix (a repository's or a folder's documents)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return list(session.scalars(select(Document.path).where(Document.path.like(f"{escaped}%", escape="\\"))))


def remove_documents(session: Session, paths: Collection[str], now: datetime) -> list[int]:
    """Forget these documents; an item no other document holds is marked removed and leaves the
    search index in the same transaction. Returns the ids of the items removed now; paths that are
    not stored are ignored."""
    wanted = sorted(set(paths))
    doc_ids: list[int] = []
    for offset in range(0, len(wanted), _CHUNK):
        doc_ids += session.scalars(select(Document.id).where(Document.path.in_(wanted[offset:offset + _CHUNK])))
    if not doc_ids:
        return []
    held: set[int] = set()
    for chunk in _chunks(doc_ids):
        held.update(session.scalars(select(ItemSource.item_id).where(ItemSource.document_id.in_(chunk))))
        session.execute(delete(ItemSource).where(ItemSource.document_id.in_(chunk)))
    orphans = []
    for chunk in _chunks(sorted(held)):
        still = set(session.scalars(select(ItemSource.item_id).where(ItemSource.item_id.in_(chunk)).distinct()))
        orphans += [item_id for item_id in chunk if item_id not in still]
    removed: list[int] = []
    for chunk in _chunks(orphans):
        removed += session.scalars(select(Item.id).where(Item.id.in_(chunk), Item.removed.is_(False)))
        session.execute(update(Item).where(Item.id.in_(chunk)).values(removed=True, updated_at=now))
    for chunk in _chunks(doc_ids):
        session.execute(update(Item).where(Item.document_id.in_(chunk)).values(document_id=None))
        session.execute(delete(Document).where(Document.id.in_(chunk)))
    search.unindex_items(session, removed)
    return removed


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[offset:offset + _CHUNK]) for offset in range(0, len(ids), _CHUNK)]
