"""JSON records written by an RSS-reading service: one feed and the articles it fetched.

The record holds ``feed`` (``name``, ``url``) and ``toInsertArticleList`` (``title``, ``link``,
HTML ``description``, RFC 822 ``publishedDate``, cover image ``bgimg``); everything else is the
service's CDN and proxy bookkeeping and is ignored.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from digests.errors import ParseError
from digests.items import ParsedItem
from digests.parsers._links import find_urls, is_http_url, unique
from digests.parsers._markdown import markdown_inline_text
from digests.parsers._text import KeyMaker, clip, html_text

NAME = "rssjson"

_MARKER = "toInsertArticleList"
_ORIGINAL_LINK_TEXT = re.compile(r"^(?:阅读)?原文(?:链接|地址)?$|^(?:read more|original|source)$", re.IGNORECASE)


def sniff(text: str) -> bool:
    """A JSON object that carries the service's ``toInsertArticleList``."""
    return text.lstrip("\ufeff \t\r\n").startswith("{") and _MARKER in text


def parse(text: str, *, path: str = "") -> list[ParsedItem]:
    """One item per article of ``toInsertArticleList``; articles without title or link are skipped."""
    try:
        record = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ParseError("invalid JSON: nested too deeply") from None
    if not isinstance(record, dict):
        raise ParseError("not an RSS-reader record: the JSON is not an object")
    articles = record.get(_MARKER)
    if not isinstance(articles, list):
        raise ParseError(f"not an RSS-reader record: no {_MARKER} list")
    feed = record.get("feed")
    source = _string(feed.get("name")) if isinstance(feed, dict) else ""
    make_key = KeyMaker()
    items = []
    for article in articles:
        if isinstance(article, dict):
            item = _item(article, source)
            if item is not None:
                item.key = make_key(item.url)
                items.append(item)
    return items


def _item(article: dict[str, Any], source: str) -> ParsedItem | None:
    title = markdown_inline_text(_string(article.get("title")))
    url = _string(article.get("link")).strip()
    if not title or not is_http_url(url):
        return None
    body = html_text(_string(article.get("description")))
    originals = [href for href, label in body.anchors if _ORIGINAL_LINK_TEXT.match(label)]
    # The reader service appends a bare "原文" anchor; as text it is noise, as a link it is kept.
    text = "\n".join(line for line in body.text.split("\n") if not _ORIGINAL_LINK_TEXT.match(line))
    cover = _string(article.get("bgimg")).strip()
    image = cover if is_http_url(cover) else (body.images[0] if body.images else None)
    return ParsedItem(
        key="",
        title=title,
        url=url,
        links=unique([url, *originals, *find_urls(text)]),
        summary=clip(text),
        image=image,
        source=source,
        published_at=_published_at(article),
        kind="article",
        author=markdown_inline_text(_string(article.get("author"))),
    )


def _published_at(article: dict[str, Any]) -> datetime | None:
    """``publishedDate`` (RFC 822, offset kept), else the service's epoch-milliseconds stamp."""
    raw = _string(article.get("publishedDate")).strip()
    if raw:
        try:
            parsed = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError, OverflowError):
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    stamp = article.get("publishedOrCreatedDate")
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        try:
            return datetime.fromtimestamp(stamp / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
