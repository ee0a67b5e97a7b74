"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org): one item per entry of ``items``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from digests.errors import ParseError
from digests.items import ParsedItem
from digests.parsers._links import find_urls, is_http_url, unique
from digests.parsers._text import KeyMaker, clean_line, clip, html_text, is_tracking_image

NAME = "jsonfeed"

_VERSION = re.compile(r'"version"\s*:\s*"https?://jsonfeed\.org/version/1(?:\.\d+)?/?"')
_SNIFF_WINDOW = 4096
_TITLE_FROM_TEXT = 80


def sniff(text: str) -> bool:
    """A JSON object whose ``version`` names a jsonfeed.org version (it comes first in practice)."""
    head = text[:_SNIFF_WINDOW].lstrip("\ufeff \t\r\n")
    return head.startswith("{") and bool(_VERSION.search(head))


def parse(text: str, *, path: str = "") -> list[ParsedItem]:
    """The feed's items that have an http(s) link and a title (or text to make one from)."""
    try:
        feed = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON Feed at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ParseError("invalid JSON Feed: nested too deeply") from None
    if not isinstance(feed, dict):
        raise ParseError("not a JSON Feed: the JSON is not an object")
    entries = feed.get("items")
    if not isinstance(entries, list):
        raise ParseError("not a JSON Feed: no items list")
    source = clean_line(_string(feed.get("title")))
    make_key = KeyMaker()
    items = []
    for entry in entries:
        if isinstance(entry, dict):
            item = _item(entry, source)
            if item is not None:
                item.key = make_key(_string(entry.get("id")).strip() or str(entry.get("id") or "") or item.url)
                items.append(item)
    return items


def _item(entry: dict[str, Any], source: str) -> ParsedItem | None:
    url = _string(entry.get("url")).strip()
    external = _string(entry.get("external_url")).strip()
    if not is_http_url(url):
        url = external
    if not is_http_url(url):
        return None
    content_html = _string(entry.get("content_html"))
    body = html_text(content_html) if content_html else None
    text = body.text if body is not None else _string(entry.get("content_text"))
    text = text or _string(entry.get("summary"))
    title = clean_line(_string(entry.get("title"))) or clip(clean_line(text), _TITLE_FROM_TEXT)
    if not title:
        return None
    anchors = [href for href, _ in body.anchors] if body is not None else []
    images = [_string(entry.get("image")), _string(entry.get("banner_image")), *(body.images if body else [])]
    image = next((src for src in images if is_http_url(src) and not is_tracking_image(src)), None)
    tags = entry.get("tags")
    return ParsedItem(
        key="",
        title=title,
        url=url,
        links=unique([url, *([external] if is_http_url(external) else []), *anchors, *find_urls(text)]),
        summary=clip(text),
        image=image,
        source=source,
        published_at=_moment(entry.get("date_published")) or _moment(entry.get("date_modified")),
        tags=unique(clean_line(tag) for tag in tags if isinstance(tag, str)) if isinstance(tags, list) else [],
        kind="news",
        author=_author(entry),
    )


def _author(entry: dict[str, Any]) -> str:
    authors = entry.get("authors")
    candidates = authors if isinstance(authors, list) else [entry.get("author")]
    names = [clean_line(_string(a.get("name"))) for a in candidates if isinstance(a, dict)]
    return ", ".join(name for name in names if name)


def _moment(value: Any) -> datetime | None:
    """An RFC 3339 date; UTC when it carries no offset."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
