"""The item a parser produces: one news item, not one file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class ParsedItem:
    """One news item as read from a document, before normalisation and storage.

    ``key`` is stable within its document (re-ingesting a changed document updates the item
    with the same key instead of adding a new one). ``url`` is the primary link; ``links``
    holds every link of the item, the primary one included. ``published_at`` is timezone-aware
    or None when the document has no date.
    """

    key: str
    title: str
    url: str
    links: list[str] = field(default_factory=list)
    summary: str = ""
    commentary: str = ""
    image: str | None = None
    source: str = ""
    published_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    category: str = ""
    kind: str = "news"  # news | echo | article | link
    author: str = ""
