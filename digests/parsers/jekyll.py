"""Jekyll blog posts: link-list sections where a URL line followed by a title line is an item.

A post is YAML front matter (``layout``, ``title``, ``category``) and kramdown. Inside a
``# section``, every bare URL line whose next non-blank line is a title-like line becomes an
item; the prose directly above the pair (since the previous ``---``, heading or pair) is its
summary. Essays without such pairs yield no items, which is not an error.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from typing import Any

from digests.errors import ParseError
from digests.items import ParsedItem
from digests.parsers._frontmatter import front_matter_bounds, has_front_matter, split_front_matter
from digests.parsers._links import find_urls, host_of, is_http_url, unique, unwrap_redirect
from digests.parsers._markdown import CODE_FENCE, IMAGE, LIST_ITEM, QUOTE_MARKERS, RULE, markdown_inline_text
from digests.parsers._text import SHANGHAI, KeyMaker, clip, midnight_in_shanghai

NAME = "jekyll"

_LINUXCN_KEY = re.compile(r"\n(?:permalink:\s*['\"]?/article-|fromurl:|islctt:|titlepic:)")  # by its newline
_HEADING = re.compile(r"^ {0,3}(#{1,6})(.*?)#*\s*$")
_URL_LINE = re.compile(r"^ {0,3}<?(https?://\S+?)>?\s*$", re.IGNORECASE)
_LIQUID_BLOCK_OPEN = re.compile(r"^\s*\{%-?\s*(highlight|raw|comment)\b")
_LIQUID_BLOCK_CLOSE = {name: re.compile(r"\{%-?\s*end" + name + r"\b")
                       for name in ("highlight", "raw", "comment")}
_TOC_MARKER = re.compile(r"^\s*(?:[*-]\s+toc|\{:toc\}|\[TOC\])\s*$", re.IGNORECASE)
_NOT_A_TITLE_START = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|[>|!<$]|\{[%:{]|`{3}|~{3}|\\\[)")
_SENTENCE_END = ("。", "：", ":", "，", ",", "；", ";", "、")
_TITLE_MAX = 160
_FILE_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})-")
_MD_LINK_TARGET = re.compile(r"\[[^\]\n]*\]\(\s*<?(https?://[^)\s>]+)>?[^)\n]*\)", re.IGNORECASE)
_TZ_SUFFIX = re.compile(r"\s*([+-]\d{2}):?(\d{2})$")
_MATH_CLOSE = re.compile(r"\$\$")
_TEXT_DATE = re.compile(r"^\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")


def sniff(text: str) -> bool:
    """Front matter that is closed and carries none of linux.cn's own keys."""
    if not has_front_matter(text):
        return False
    bounds = front_matter_bounds(text)
    return bounds is not None and not _LINUXCN_KEY.search(text, bounds[0], bounds[1])


def parse(text: str, *, path: str = "") -> list[ParsedItem]:
    """Every URL-line/title-line pair of the post, in document order."""
    meta, body = _front_matter(text)
    category, tags = _category_and_tags(meta)
    published_at = _published_at(meta.get("date"), path)
    author = meta.get("author")
    if not isinstance(author, str):
        author = ""
    make_key = KeyMaker()

    items: list[ParsedItem] = []
    section = ""
    prose: list[str] = []  # raw lines since the last pair, rule or heading; cleaned only when used
    pending_url = ""
    closer: re.Pattern[str] | None = None  # set while inside a fenced code, liquid or maths block
    fence = ""

    for line in body.splitlines():
        if closer is not None or fence:
            if fence and line.lstrip().startswith(fence):
                fence = ""
            elif closer is not None and closer.search(line):
                closer = None
            continue
        stripped = line.strip()
        if not stripped:
            continue
        # Dispatch on the first character: most lines are prose and should meet no regex at all.
        first = stripped[0]
        if first in "`~":
            fence_match = CODE_FENCE.match(line)
            if fence_match:
                fence, pending_url = fence_match.group(1), ""
                continue
        elif first == "{":
            liquid = _LIQUID_BLOCK_OPEN.match(line)
            if liquid:
                if not _LIQUID_BLOCK_CLOSE[liquid.group(1)].search(line, liquid.end()):
                    closer = _LIQUID_BLOCK_CLOSE[liquid.group(1)]
                pending_url = ""
                continue
        elif first == "$" and stripped.startswith("$$"):
            if stripped.count("$$") % 2 == 1:
                closer = _MATH_CLOSE
            pending_url = ""
            continue
        elif first == "#":
            heading = _HEADING.match(line)
            if heading:
                section = markdown_inline_text(heading.group(2))
                prose, pending_url = [], ""
                continue
        elif first in "-*_" and RULE.match(line):
            prose, pending_url = [], ""
            continue
        elif first in "hH<":
            url_line = _URL_LINE.match(line)
            if url_line and is_http_url(url_line.group(1)):
                pending_url = url_line.group(1)
                continue
        if first in "*-{[" and _TOC_MARKER.match(line):
            continue
        if pending_url:
            title = _title_of(line)
            if title:
                url = unwrap_redirect(pending_url)
                items.append(ParsedItem(
                    key=make_key(url),
                    title=title,
                    url=url,
                    links=unique([url, *(link for raw in prose for link in _links_in(raw))]),
                    summary=clip("\n".join(filter(None, map(_prose_line, prose)))),
                    source=host_of(url),
                    published_at=published_at,
                    tags=[section, *tags] if section else list(tags),
                    category=category,
                    kind="link",
                    author=author,
                ))
                prose, pending_url = [], ""
                continue
            pending_url = ""
        prose.append(line)
    return items


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    """split_front_matter, with YAML's own value errors (month 13, lone surrogates) as ParseError."""
    try:
        return split_front_matter(text)
    except (ValueError, TypeError, UnicodeError, RecursionError) as exc:
        raise ParseError(f"broken YAML front matter: {exc}") from None


def _title_of(line: str) -> str:
    """The line as an item title, or "" when it reads like prose or markup rather than a title."""
    if _NOT_A_TITLE_START.match(line):
        return ""
    title = markdown_inline_text(line)
    if not title or len(title) > _TITLE_MAX or title.endswith(_SENTENCE_END):
        return ""
    return title


def _links_in(line: str) -> list[str]:
    """Absolute link targets of a Markdown line: ``[text](url)`` links, then bare URLs."""
    if "http" not in line:
        return []
    targets = _MD_LINK_TARGET.findall(line)
    bare = find_urls(_MD_LINK_TARGET.sub("", IMAGE.sub("", line)))
    return [unwrap_redirect(url) for url in [*targets, *bare] if is_http_url(url)]


def _prose_line(line: str) -> str:
    """A Markdown body line as plain text (list markers kept as bullets)."""
    line = QUOTE_MARKERS.sub("", line)
    bullet = LIST_ITEM.match(line)
    if bullet:
        text = markdown_inline_text(line[bullet.end():])
        return f"• {text}" if text else ""
    return markdown_inline_text(line)


def _category_and_tags(meta: dict[str, Any]) -> tuple[str, list[str]]:
    """(category, extra tags) from ``category``/``categories`` and ``tags`` in any YAML shape."""
    raw = meta.get("category")
    if raw is None:
        raw = meta.get("categories")
    names = _names(raw)
    return (names[0] if names else ""), names[1:] + _names(meta.get("tags"))


def _names(value: Any) -> list[str]:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        return []
    names = (markdown_inline_text(str(v)) for v in value if isinstance(v, (str, int, float)))
    return [name for name in names if name]


def _published_at(value: Any, path: str) -> datetime | None:
    """Front-matter ``date`` if usable, else the ``YYYY-M-D-`` prefix of the file name."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=SHANGHAI)
    if isinstance(value, date):
        return midnight_in_shanghai(value)
    if isinstance(value, str):
        parsed = _date_from_string(value)
        if parsed is not None:
            return parsed
    match = _FILE_DATE.match(os.path.basename(path))
    return _midnight(*match.groups()) if match else None


def _date_from_string(value: str) -> datetime | None:
    text = value.strip()
    # Jekyll writes "2016-03-20 10:00:00 +0800"; fromisoformat wants the offset as "+08:00".
    normalised = _TZ_SUFFIX.sub(r"\1:\2", text)
    try:
        parsed = datetime.fromisoformat(normalised)
    except ValueError:
        match = _TEXT_DATE.match(text)
        return _midnight(*match.groups()) if match else None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=SHANGHAI)


def _midnight(year: str, month: str, day: str) -> datetime | None:
    try:
        return midnight_in_shanghai(date(int(year), int(month), int(day)))
    except ValueError:
        return None

