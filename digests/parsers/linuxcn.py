"""linux.cn articles: YAML front matter + Markdown.

A 硬核观察 (column) post is a container: each ``###`` section is a news item and each bullet of
a ``### 回音`` section is a follow-up ("echo") item. Every other article is one item.

The Markdown is read with precompiled regexes and a line scanner, never an HTML/Markdown parser:
ingest must stay within a few times the cost of the YAML front matter itself. This module holds
sniffing, the front matter and ordinary articles; ``_linuxcn_column`` the column's sections,
``_linuxcn_blocks`` the body's blocks, ``_linuxcn_inline`` inline text and links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from digests.errors import ParseError
from digests.items import ParsedItem
from digests.parsers._frontmatter import front_matter_bounds, has_front_matter, split_front_matter
from digests.parsers._links import unique
from digests.parsers._linuxcn_blocks import body_lines, first_paragraph
from digests.parsers._linuxcn_column import column_items
from digests.parsers._linuxcn_inline import (
    BASE_URL,
    LINK_TARGET,
    LINK_TEXT,
    SITE_NAME,
    strip_artifacts,
    web_url,
    web_urls,
)
from digests.parsers._text import SHANGHAI

NAME = "linuxcn"

COLUMN = "硬核观察"

# --- sniffing ---------------------------------------------------------------------------------

# Key lines found by their newline (the front matter's first line follows the opening fence's).
_LINUXCN_KEY = re.compile(r"\n(?:permalink:[ \t]*['\"]?/article-\d|fromurl:|islctt:|titlepic:)")
_LAYOUT_KEY = re.compile(r"\nlayout:")
_SNIFF_LIMIT = 1 << 20  # an unclosed front matter is searched this far, not to the end of a huge file

# --- front matter values ---------------------------------------------------------------------

_DATE = re.compile(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?\s*$")

# --- article bodies ---------------------------------------------------------------------------

# Links in article bodies: fenced code is cut out first so shell snippets add no "links".
_FENCE_ANYWHERE = re.compile(r"^[ \t>]*(`{3,}|~{3,})(.*)$", re.MULTILINE)
_BODY_LINK = re.compile(  # the lookahead as in _linuxcn_inline's _INLINE
    rf"(?=[\[<])(?:(?<!!)\[{LINK_TEXT}\]\(\s*<?({LINK_TARGET})"
    r"|<((?:https?|ftp)://[^>\s]+)>"
    r"|<a\s[^>]{0,500}?href=[\"']([^\"']{1,2000})[\"'])"
)
_BODY_IMAGE = re.compile(r"!\[[^\]]{0,1000}\]\(\s*<?([^)\s>]+)")
# LCTT translations end with "via: <original>", then credits linking to translators' profiles.
_LCTT_FOOTER = re.compile(r"\nvia[ \t]*[:：]")  # searched in "\n" + body: by its newline, as _LINUXCN_KEY
_FOOTER_WINDOW = 4000


def sniff(text: str) -> bool:
    """True for front matter carrying linux.cn keys (permalink /article-N, fromurl, islctt, titlepic).

    Only the front matter is searched, with regexes: no YAML is parsed. A ``layout:`` key marks a
    generic Jekyll post, which is never claimed.
    """
    if not has_front_matter(text):
        return False
    bounds = front_matter_bounds(text)
    start, end = (bounds[0], bounds[1]) if bounds is not None else (3, min(len(text), _SNIFF_LIMIT))
    return bool(_LINUXCN_KEY.search(text, start, end)) and not _LAYOUT_KEY.search(text, start, end)


def parse(text: str, *, path: str = "") -> list[ParsedItem]:
    """The items of a linux.cn article: one per column section or echo bullet, else one.

    Raises ParseError for broken front matter, a missing title or permalink, or a bad date.
    """
    try:
        meta, body = split_front_matter(text, _KEYS)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML raises plain ValueError for impossible timestamps such as 2021-13-45.
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"broken YAML front matter: {exc}") from None
    doc = _read_document(meta)
    if doc.is_column:
        items = column_items(body_lines(body), doc.permalink)
        if items:
            for item in items:
                item.published_at, item.tags, item.category, item.author = (
                    doc.published_at, list(doc.tags), doc.category, doc.author)
            return items
    return [_article_item(body, doc)]


# --- front matter -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Document:
    title: str
    permalink: str
    published_at: datetime | None
    tags: list[str]
    category: str
    author: str
    summary: str  # raw front matter text: only ordinary articles use it
    fromurl: str
    image: str | None
    is_column: bool


# Every front matter key _read_document reads.
_KEYS = frozenset({"title", "category", "categories", "author", "translator", "summary", "excerpt",
                   "largepic", "pic", "permalink", "id", "date", "updated", "tags", "fromurl"})


def _read_document(meta: dict[Any, Any]) -> _Document:
    title = strip_artifacts(_scalar_text(meta, "title")).replace("\n", " ")
    if not title:
        raise ParseError("linux.cn article has no title (front matter key 'title')")
    categories = _string_list(meta, "category") + _string_list(meta, "categories")
    author = _scalar_text(meta, "author").strip()
    translator = _scalar_text(meta, "translator").strip()
    if translator:
        author = f"{author}（译者：{translator}）" if author else f"译者：{translator}"
    summary = _scalar_text(meta, "summary").strip() or _scalar_text(meta, "excerpt").strip()
    image = _scalar_text(meta, "largepic").strip() or _scalar_text(meta, "pic").strip()
    return _Document(
        title=title,
        permalink=_permalink_url(meta),
        published_at=_published_at(meta),
        tags=_string_list(meta, "tags"),
        category=", ".join(unique(categories)),
        author=author,
        summary=summary,
        fromurl=_scalar_text(meta, "fromurl").strip(),
        image=web_url(image) or None,
        is_column=COLUMN in categories or title.startswith(COLUMN),
    )


def _scalar_text(meta: dict[Any, Any], key: str) -> str:
    value = meta.get(key)
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    raise ParseError(f"front matter key {key!r} must be text, not {type(value).__name__}")


def _string_list(meta: dict[Any, Any], key: str) -> list[str]:
    value = meta.get(key)
    if value is None:
        return []
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return [text] if text else []
    if isinstance(value, list):
        texts = (
            str(v).strip() for v in value if isinstance(v, str | int | float) and not isinstance(v, bool)
        )
        return [t for t in texts if t]
    raise ParseError(f"front matter key {key!r} must be text or a list, not {type(value).__name__}")


def _permalink_url(meta: dict[Any, Any]) -> str:
    permalink = _scalar_text(meta, "permalink").strip()
    if permalink:
        url = web_url(permalink)
        if not url:
            raise ParseError(f"permalink is not a web address or linux.cn path: {permalink[:60]!r}")
        return url
    article_id = _scalar_text(meta, "id").strip()
    if article_id.isdigit():
        return f"{BASE_URL}/article-{article_id}-1.html"
    raise ParseError("linux.cn article has neither a permalink nor a numeric id")


def _published_at(meta: dict[Any, Any]) -> datetime | None:
    key = "date" if meta.get("date") not in (None, "") else "updated"
    value = meta.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and (found := _DATE.match(value)):
        try:
            year, month, day, hour, minute, second = (int(part) for part in found.groups(default="0"))
            moment = datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise ParseError(f"front matter {key!r} is not a valid date: {value[:40]!r}") from None
    else:
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise ParseError(f"front matter {key!r} is not a date: {shown}")
    return moment.replace(tzinfo=SHANGHAI) if moment.tzinfo is None else moment


# --- ordinary articles ------------------------------------------------------------------------


def _article_item(body: str, doc: _Document) -> ParsedItem:
    # In "\n" + body the newline before a line stands at that line's offset in body.
    footer = _LCTT_FOOTER.search("\n" + body, max(0, len(body) - _FOOTER_WINDOW))
    if footer is not None:
        body = body[: footer.start()]
    without_code = _without_fenced_code(body) if ("```" in body or "~~~" in body) else body
    links = [m.group(1) or m.group(2) or m.group(3) or "" for m in _BODY_LINK.finditer(without_code)]
    fromurl = web_url(doc.fromurl)
    image = doc.image
    if image is None:
        found = _BODY_IMAGE.search(without_code)
        image = (web_url(found.group(1)) or None) if found else None
    return ParsedItem(
        key="article",
        title=doc.title,
        url=doc.permalink,
        links=unique([doc.permalink, fromurl, *web_urls(links)]),
        summary=strip_artifacts(doc.summary) or first_paragraph(body_lines(body)),
        image=image,
        source=SITE_NAME,
        published_at=doc.published_at,
        tags=list(doc.tags),
        category=doc.category,
        kind="article",
        author=doc.author,
    )


def _without_fenced_code(text: str) -> str:
    """``text`` minus its fenced code blocks, found in one pass over the fence lines only."""
    kept: list[str] = []
    start = 0
    fence = ""
    for marker in _FENCE_ANYWHERE.finditer(text):
        run = marker.group(1)
        if not fence:
            kept.append(text[start : marker.start()])
            fence = run
        elif run[0] == fence[0] and len(run) >= len(fence) and not marker.group(2).strip():
            fence = ""
            start = marker.end()
    if not fence:
        kept.append(text[start:])
    return "".join(kept)
