"""Items in the database: read as views (commentary resolved), listed, counted, annotated."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digests.clock import utcnow
from digests.errors import NotFoundError
from digests.items import ItemView
from digests.store.audit import audit
from digests.store.models import Commentary, Document, Item


def item_views(session: Session, items: list[Item]) -> list[ItemView]:
    """Views of items in the given order, with editor/plugin commentary applied."""
    if not items:
        return []
    ids = [item.id for item in items]
    latest: dict[int, Commentary] = {}
    for entry in session.scalars(
        select(Commentary).where(Commentary.item_id.in_(ids)).order_by(Commentary.created_at, Commentary.id)
    ):
        current = latest.get(entry.item_id)
        # An editor's word beats a plugin's; the newest of the same origin wins.
        if current is None or entry.origin == "editor" or current.origin != "editor":
            latest[entry.item_id] = entry
    doc_ids = {item.document_id for item in items if item.document_id is not None}
    paths: dict[int, str] = {}
    if doc_ids:
        paths = dict(session.execute(select(Document.id, Document.path).where(Document.id.in_(doc_ids))).all())
    views = []
    for item in items:
        extra = latest.get(item.id)
        commentary, origin = item.commentary, "source" if item.commentary else ""
        if extra is not None and (extra.origin == "editor" or not commentary):
            commentary, origin = extra.text, extra.origin
        views.append(ItemView(
            id=item.id, title=item.title, url=item.url, links=list(item.links or []), summary=item.summary,
            commentary=commentary, commentary_origin=origin, image=item.image, source=item.source,
            published_at=item.published_at, tags=list(item.tags or []), category=item.category,
            kind=item.kind, format=item.format, document=paths.get(item.document_id or -1, ""),
        ))
    return views


def get_item(session: Session, item_id: int) -> Item:
    item = session.get(Item, item_id)
    if item is None or item.removed:
        raise NotFoundError(f"no item {item_id}", what="item", name=item_id)
    return item


def list_items(session: Session, *, limit: int | None = None, offset: int = 0, newest_first: bool = False) -> list[Item]:
    order = (Item.published_at.desc(), Item.id.desc()) if newest_first else (Item.id,)
    stmt = select(Item).where(Item.removed.is_(False)).order_by(*order).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def count_items(session: Session) -> int:
    return session.scalar(select(func.count(Item.id)).where(Item.removed.is_(False))) or 0


def add_commentary(session: Session, item_id: int, text: str, *, author: str, origin: str = "editor",
                   now: datetime | None = None) -> Commentary:
    """Store an editor's (or plugin's) commentary; it is what the next post of the item shows."""
    text = " ".join(text.split())
    if not text:
        raise ValueError("the commentary is empty")
    get_item(session, item_id)
    entry = Commentary(item_id=item_id, text=text, author=author, origin=origin, created_at=now or utcnow())
    session.add(entry)
    if origin == "editor":
        audit(session, author, "comment", f"item:{item_id}", {"text": text}, now=now)
    session.flush()
    return entry
