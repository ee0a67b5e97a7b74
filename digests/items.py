"""The item a parser produces: one news item, not one file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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


@dataclass(slots=True)
class ItemView:
    """An item as formatters and commands see it: the effective commentary resolved."""

    id: int
    title: str
    url: str
    links: list[str]
    summary: str
    commentary: str
    commentary_origin: str  # source | editor | plugin | ""
    image: str | None
    source: str
    published_at: datetime | None
    tags: list[str]
    category: str
    kind: str
    format: str
    document: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "document": self.document, "format": self.format, "kind": self.kind,
            "title": self.title, "url": self.url, "links": self.links, "summary": self.summary,
            "commentary": self.commentary, "commentary_origin": self.commentary_origin,
            "image": self.image, "source": self.source,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "tags": self.tags, "category": self.category,
        }
