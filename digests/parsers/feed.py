"""RSS 0.9x/1.0/2.0 and Atom feeds, read by ``feedparser``: one item per entry."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from digests.errors import ParseError
from digests.items import ParsedItem
from digests.parsers._links import find_urls, is_http_url, unique
from digests.parsers._text import KeyMaker, clean_line, clip, html_text, is_tracking_image

NAME = "feed"

_SNIFF_WINDOW = 4096
_FEED_START = re.compile(
    r"\A\ufeff?\s*(?:<\?xml[^>]*\?>\s*)?"
    r"(?:(?:<!--.*?-->|<!DOCTYPE[^>]*>|<\?xml-stylesheet[^>]*\?>)\s*)*"
    r"<(?:rss|feed|rdf:RDF|RDF)[\s>/]",
    re.DOTALL | re.IGNORECASE,
)
_XML_DECLARED_ENCODING = re.compile(r"\A(\ufeff?\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2")
# The text is already decoded: tell feedparser it is UTF-8 so a stale encoding="gb2312" in the
# declaration cannot make it decode our re-encoded bytes wrongly.
_HEADERS = {"content-type": "application/xml; charset=utf-8"}
_TITLE_FROM_SUMMARY = 80


def sniff(text: str) -> bool:
    """An XML document whose root element is ``<rss>``, ``<feed>`` or ``<rdf:RDF>``."""
    return bool(_FEED_START.match(text[:_SNIFF_WINDOW]))


def parse(text: str, *, path: str = "") -> list[ParsedItem]:
    """The feed's entries that have a link and a title (or text to make one from)."""
    data = _XML_DECLARED_ENCODING.sub(r"\1\2utf-8\2", text, count=1).lstrip("\ufeff")
    # A stream, never the string itself: feedparser would treat a string as a URL or file name.
    parsed = feedparser.parse(io.BytesIO(data.encode("utf-8", "replace")), response_headers=_HEADERS,
                              sanitize_html=True, resolve_relative_uris=True)
    entries = parsed.get("entries") or []
    if not entries:
        if parsed.get("bozo"):
            reason = parsed.get("bozo_exception")
            raise ParseError(f"not a readable RSS/Atom feed: {_reason(reason)}")
        if not parsed.get("version"):
            raise ParseError("not an RSS or Atom feed: no <rss>, <feed> or <rdf:RDF> root element")
        return []
    channel = parsed.get("feed") or {}
    source = clean_line(html_text(_string(channel.get("title"))).text)
    base = _string(channel.get("link"))
    make_key = KeyMaker()
    items = []
    for entry in entries:
        item = _item(entry, source, base if is_http_url(base) else "")
        if item is not None:
            identity = _string(entry.get("id")).strip() or item.url
            item.key = make_key(identity)
            items.append(item)
    return items


def _item(entry: Any, source: str, base: str) -> ParsedItem | None:
    url = _entry_link(entry, base)
    if not url:
        return None
    body_html = _body_html(entry)
    body = html_text(body_html)
    title = clean_line(html_text(_string(entry.get("title"))).text)
    if not title:
        title = clip(clean_line(body.text), _TITLE_FROM_SUMMARY)
    if not title:
        return None
    hrefs = [_absolute(link.get("href"), base) for link in entry.get("links") or [] if _is_page_link(link)]
    return ParsedItem(
        key="",
        title=title,
        url=url,
        links=unique([url, *hrefs, *(href for href, _ in body.anchors), *find_urls(body.text)]),
        summary=clip(body.text),
        image=_image(entry, body.images, base),
        source=source,
        published_at=_published_at(entry),
        tags=unique(clean_line(_string(tag.get("label")) or _string(tag.get("term")))
                    for tag in entry.get("tags") or [] if hasattr(tag, "get")),
        kind="news",
        author=clean_line(_string(entry.get("author"))),
    )


def _entry_link(entry: Any, base: str) -> str:
    """The entry's page: ``link``, else an alternate link, else a permalink guid."""
    candidates = [_string(entry.get("link"))]
    candidates += [_string(link.get("href")) for link in entry.get("links") or []
                   if hasattr(link, "get") and link.get("rel", "alternate") == "alternate"]
    if entry.get("guidislink", False) or _string(entry.get("id")).startswith(("http://", "https://")):
        candidates.append(_string(entry.get("id")))
    for candidate in candidates:
        url = _absolute(candidate, base)
        if url:
            return url
    return ""


def _is_page_link(link: Any) -> bool:
    return hasattr(link, "get") and link.get("rel", "alternate") in ("alternate", "related", "via")


def _absolute(href: Any, base: str) -> str:
    """``href`` made absolute against the feed's own link; "" unless the result is http(s)."""
    href = _string(href).strip()
    if not href:
        return ""
    if not is_http_url(href) and base:
        try:
            href = urljoin(base, href)
        except ValueError:
            return ""
    return href if is_http_url(href) else ""


def _body_html(entry: Any) -> str:
    """The richest text of the entry: full content when it is longer than the summary."""
    summary = _string(entry.get("summary"))
    contents = [_string(c.get("value")) for c in entry.get("content") or [] if hasattr(c, "get")]
    longest = max(contents, key=len, default="")
    return longest if len(longest) > len(summary) else summary


def _image(entry: Any, body_images: list[str], base: str) -> str | None:
    """Enclosure, media:content or media:thumbnail image, else the first image of the body."""
    candidates: list[str] = []
    for link in entry.get("enclosures") or []:
        if hasattr(link, "get") and _string(link.get("type")).startswith("image/"):
            candidates.append(_string(link.get("href")))
    for media in entry.get("media_content") or []:
        if hasattr(media, "get") and (_string(media.get("medium")) == "image"
                                      or _string(media.get("type")).startswith("image/")):
            candidates.append(_string(media.get("url")))
    for thumb in entry.get("media_thumbnail") or []:
        if hasattr(thumb, "get"):
            candidates.append(_string(thumb.get("url")))
    for candidate in [*candidates, *body_images]:
        url = _absolute(candidate, base)
        if url and not is_tracking_image(url):
            return url
    return None


def _published_at(entry: Any) -> datetime | None:
    """Publication (else update) time with the offset the feed wrote; UTC when only feedparser's
    normalised struct is usable."""
    for key in ("published", "updated", "created"):
        raw = _string(entry.get(key)).strip()
        if raw:
            parsed = _datetime_from(raw)
            if parsed is not None:
                return parsed
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        struct = entry.get(key)
        if struct:
            try:
                year, month, day, hour, minute, second = struct[:6]
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


def _datetime_from(raw: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(raw)  # RFC 3339 (Atom), "Z" included on Python 3.11
    except ValueError:
        try:
            parsed = parsedate_to_datetime(raw)  # RFC 822 (RSS)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _reason(exception: Any) -> str:
    message = clean_line(str(exception)) if exception is not None else ""
    return message or (type(exception).__name__ if exception is not None else "unknown error")


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
