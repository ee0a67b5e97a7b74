"""Index entries: an item's recency key and its title and body as token text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from digests.search.tokens import MAX_BODY_TOKENS, MAX_TITLE_TOKENS, index_tokens

_ID_BITS = 31
_ID_MASK = (1 << _ID_BITS) - 1
_KEY_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MAX_KEY = (1 << 63) - 1  # above every recency key


def recency_key(published_at: datetime | None, item_id: int) -> int:
    """One integer ordered like (published second, item id): the index's row key.

    Seconds are counted from 2000-01-01 UTC and clamped to a signed 32-bit range (1932-2068);
    an item without a date sorts before every dated one.
    """
    if not 0 < item_id <= _ID_MASK:
        raise ValueError(f"item id {item_id} does not fit the search key")
    if published_at is None:
        seconds = -(1 << 31)
    else:
        if published_at.tzinfo is None:  # the store hands out aware times; a naive one is UTC
            published_at = published_at.replace(tzinfo=UTC)
        seconds = int((published_at - _KEY_EPOCH).total_seconds() // 1)
        seconds = max(-(1 << 31) + 1, min((1 << 31) - 1, seconds))
    return ((seconds + (1 << 31)) << _ID_BITS) | item_id


def item_id_of_key(key: int) -> int:
    return key & _ID_MASK


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """An item as the index holds it: its key and its title and body as space-separated tokens."""

    item_id: int
    key: int
    title: str
    body: str


class Indexable(Protocol):
    """What an index entry is made from: an Item, or a row of these columns."""

    id: int
    title: str
    summary: str
    commentary: str
    source: str
    tags: list[Any]
    published_at: datetime | None


class IndexableItem(Indexable, Protocol):
    """What index_items reads: an Item, which says whether it is removed."""

    removed: bool


def search_doc(item: Indexable) -> SearchDoc:
    """The index entry of an item: title, then summary, commentary, source and tags as the body."""
    tags = " ".join(str(tag) for tag in (item.tags or []))
    # One pass over the body fields: no token spans a line break, so joining them changes nothing.
    body = "\n".join(part for part in (item.summary, item.commentary, item.source, tags) if part)
    return SearchDoc(
        item.id,
        recency_key(item.published_at, item.id),
        " ".join(index_tokens(item.title or "", MAX_TITLE_TOKENS)),
        " ".join(index_tokens(body, MAX_BODY_TOKENS)),
    )
