"""linux.cn articles: YAML front matter + Markdown.

A 硬核观察 (column) post is a container: each ``###`` section is a news item and each bullet of
a ``### 回音`` section is a follow-up ("echo") item. Every other article is one item.

The Markdown is read with precompiled regexes and a line scanner, never an HTML/Markdown parser:
ingest must stay within a few times the cost of the YAML front matter itself.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from digests.errors import ParseError
from digests.items import ParsedItem
from digests.parsers._frontmatter import front_matter_bounds, has_front_matter, split_front_matter

NAME = "linuxcn"

BASE_URL = "https://linux.cn"
SITE_NAME = "Linux 中国"
COLUMN = "硬核观察"
TIMEZONE = ZoneInfo("Asia/Shanghai")

# --- sniffing ---------------------------------------------------------------------------------

# Key lines found by their newline (the front matter's first line follows the opening fence's).
_LINUXCN_KEY = re.compile(r"\n(?:permalink:[ \t]*['\"]?/article-\d|fromurl:|islctt:|titlepic:)")
_LAYOUT_KEY = re.compile(r"\nlayout:")
_SNIFF_LIMIT = 1 << 20  # an unclosed front matter is searched this far, not to the end of a huge file

# --- front matter values ---------------------------------------------------------------------

_DATE = re.compile(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?\s*$")

# --- block structure --------------------------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}###(?!#)[ \t]*(.*)$")
_CLOSING_HASHES = re.compile(r"[ \t]+#+[ \t]*$")
_HEADING_NUMBER = re.compile(r"^#\s*\d+[\s.、:：]*")
_ECHO_HEADING = re.compile(r"^(?:一句话)?回音\s*$")
_CODE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_CODE_FENCE_CLOSE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*$")
_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_IMAGE_LINE = re.compile(r"^[ \t]*!\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)[ \t]*$")
_ILLUSTRATION = re.compile(r"^[ \t]*\*?[ \t]*[（(]插图[：:].*[）)][ \t]*\*?[ \t]*$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[*+-]|\d{1,9}[.)])[ \t]+")
_RULE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_ANY_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*)$")

# --- inline Markdown and HTML -----------------------------------------------------------------

# Every open-ended span below has an upper bound: an unclosed "<ruby>" or "![" repeated
# thousands of times in a damaged file must cost linear, not quadratic, time.
_LINK_TEXT = r"(?:[^\[\]]|\[[^\[\]]{0,300}\]){0,1000}"
_LINK_TARGET = r"[^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*"
# Every alternative of _INLINE opens with one of these; the lookahead says so up front: without it
# re tries all twelve alternatives at every position of the text (two open with a lookbehind,
# which keeps re from skipping ahead by itself).
_INLINE_OPENER = r"[`!\[<*_~\\]"
_INLINE = re.compile(
    rf"(?={_INLINE_OPENER})(?:"
    r"(?P<code>`+)(?P<code_text>.{1,2000}?)(?P=code)"
    r"|!\[[^\]]{0,1000}\]\(\s*<?(?P<src>[^)\s>]*)>?[^)]{0,300}\)"
    rf"|\[(?P<text>{_LINK_TEXT})\]"
    rf"\(\s*<?(?P<href>{_LINK_TARGET})>?(?:\s+(?:\"[^\"]{{0,300}}\"|'[^']{{0,300}}'))?\s*\)"
    r"|<(?P<auto>(?:https?|ftp)://[^>\s]+)>"
    r"|<ruby>(?P<rb>.{0,300}?)<rt>(?P<rt>.{0,300}?)</rt>.{0,100}?</ruby>"
    r"|<a\s[^>]{0,500}?href=[\"'](?P<a_href>[^\"']{0,2000})[\"'][^>]{0,500}>(?P<a_text>.{0,1000}?)</a\s*>"
    r"|</?[A-Za-z][A-Za-z0-9-]{0,30}(?:\s[^<>]{0,500})?/?>"
    r"|(?P<strong>\*\*|__)(?P<strong_text>.{1,1000}?)(?P=strong)"
    r"|~~(?P<del_text>.{1,1000}?)~~"
    r"|(?<!\*)\*(?P<em_text>[^*\s](?:[^*]{0,1000}?[^*\s])?)\*(?!\*)"
    r"|(?<!\w)_(?P<em2_text>[^_\s](?:[^_]{0,1000}?[^_\s])?)_(?!\w)"
    r"|\\(?P<escaped>[\\`*_{}\[\]()#+\-.!|<>~]))",
    re.DOTALL,
)
_INLINE_TRIGGER = re.compile(_INLINE_OPENER)
_TAG = re.compile(r"<[^<>]*>")
_SPACES = re.compile(r"[ \t\u00a0]+")
# The source replaced 4-byte emoji by "?": at a line start, after a space or after CJK punctuation.
_EMOJI_MARK = re.compile(r"^\?+(?:[ \t]+|$)|(?:(?<=[ \t])|(?<=[。！？）」』”…]))\?+(?=[ \t]|$)", re.MULTILINE)
_GUILLEMET_LINE = re.compile(r"^[ \t»]*$")

_SOURCE_LINK = re.compile(
    r"\[\s*(?:\*\*)?消息来源\s*[：:]\s*(?P<name>[^\]]*?)\s*(?:\*\*)?\s*\]\(\s*<?(?P<url>[^)\s>]+)"
)
_SOURCE_LABELLED = re.compile(r"消息来源\s*[：:]\s*\[(?P<name>[^\]]+)\]\(\s*<?(?P<url>[^)\s>]+)")
_SOURCE_PLAIN = re.compile(r"^消息来源\s*[：:]\s*(?P<name>.+)$", re.MULTILINE)
_COMMENTARY_PREFIX = re.compile(r"^老王点评\s*[：:]?\s*")
_SENTENCE_END = re.compile(r"[。！？!?]+[”」』）)\"']*|\.(?=\s|$)")

# Links in article bodies: fenced code is cut out first so shell snippets add no "links".
_FENCE_ANYWHERE = re.compile(r"^[ \t>]*(`{3,}|~{3,})(.*)$", re.MULTILINE)
_BODY_LINK = re.compile(  # the lookahead as in _INLINE
    rf"(?=[\[<])(?:(?<!!)\[{_LINK_TEXT}\]\(\s*<?({_LINK_TARGET})"
    r"|<((?:https?|ftp)://[^>\s]+)>"
    r"|<a\s[^>]{0,500}?href=[\"']([^\"']{1,2000})[\"'])"
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# A lower-case host name without user, port or anything urlsplit would treat specially.
_SIMPLE_HOST = re.compile(r"https?://([a-z0-9.-]+)(?=[/?#]|\Z)")
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
        items = _column_items(_body_lines(body), doc)
        if items:
            return items
    return [_article_item(body, doc)]


def _body_lines(body: str) -> list[str]:
    return body.replace("\r\n", "\n").replace("\r", "\n").split("\n")


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
    title = _clean_text(_scalar_text(meta, "title")).replace("\n", " ")
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
        category=", ".join(_unique(categories)),
        author=author,
        summary=summary,
        fromurl=_scalar_text(meta, "fromurl").strip(),
        image=_web_url(image) or None,
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
        url = _web_url(permalink)
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
    return moment.replace(tzinfo=TIMEZONE) if moment.tzinfo is None else moment


# --- the 硬核观察 column -----------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    kind: str  # para | list | quote | code | image
    lines: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Section:
    heading: str
    blocks: list[_Block]


def _column_items(lines: list[str], doc: _Document) -> list[ParsedItem]:
    preamble, sections = _split_sections(lines)
    news = [s for s in sections if not _ECHO_HEADING.match(_section_title(s.heading))]
    # Spring 2021 posts have no blockquotes at all: the commentary is the last plain paragraph.
    last_paragraph_commentary = not any(b.kind == "quote" for s in news for b in s.blocks)
    keys: set[str] = set()
    items: list[ParsedItem] = []
    carried_images = _trailing_images(preamble)
    for section in sections:
        title = _section_title(section.heading)
        if _ECHO_HEADING.match(title):
            items.extend(_echo_items(section, doc, keys))
        else:
            item = _news_item(section, title, carried_images, last_paragraph_commentary, doc, keys)
            if item is not None:
                items.append(item)
        carried_images = _trailing_images(section.blocks)
    return items


def _split_sections(lines: list[str]) -> tuple[list[_Block], list[_Section]]:
    """Blocks before the first ``###`` heading, and the ``###`` sections (code fences respected)."""
    preamble: list[_Block] = []
    sections: list[_Section] = []
    blocks = preamble
    current: _Block | None = None
    fence = ""
    for raw in lines:
        line = raw.rstrip()
        stripped = line.lstrip()
        if fence:
            assert current is not None
            if current.kind == "quote" and not stripped.startswith(">"):
                fence = ""  # a blockquote ends its fenced code block with it
            else:
                current.lines.append(line)
                closing = _CODE_FENCE_CLOSE.match(_unquote(line) if current.kind == "quote" else line)
                if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                    fence = ""
                    if current.kind == "code":
                        current = None
                continue
        if not stripped:
            current = None
            continue
        first = stripped[0]
        # Dispatch on the first character so that plain paragraph lines cost no regex at all.
        if first == "#":
            heading = _HEADING.match(line)
            if heading:
                blocks = []
                sections.append(_Section(_CLOSING_HASHES.sub("", heading.group(1)), blocks))
                current = None
                continue
            other = _ANY_HEADING.match(line)
            if other:
                blocks.append(_Block("para", [_CLOSING_HASHES.sub("", other.group(1))]))
                current = None
                continue
        elif first == ">":
            if current is None or current.kind != "quote":
                current = _Block("quote")
                blocks.append(current)
            current.lines.append(line)
            if "``" in line or "~~" in line:
                marker = _CODE_FENCE.match(_unquote(line))
                if marker:
                    fence = marker.group(1)
            continue
        elif first in "`~":
            marker = _CODE_FENCE.match(line)
            if marker:
                fence = marker.group(1)
                current = _Block("code", [line])
                blocks.append(current)
                continue
        elif first == "!":
            image = _IMAGE_LINE.match(line)
            if image:
                url = _web_url(image.group(1))
                if url:
                    blocks.append(_Block("image", [url]))
                current = None
                continue
        elif first in "*-+_（(0123456789":
            if _ILLUSTRATION.match(line) or _RULE.match(line):
                current = None
                continue
            if _LIST_ITEM.match(line):
                if current is not None and current.kind == "list" and line.startswith(("  ", "\t")):
                    current.lines.append(line)  # a nested item stays part of its parent item
                    continue
                current = _Block("list", [line])
                blocks.append(current)
                continue
        if current is None or current.kind not in ("para", "list"):
            current = _Block("para")
            blocks.append(current)
        current.lines.append(line)
    return preamble, sections


def _section_title(heading: str) -> str:
    return _clean_text(_HEADING_NUMBER.sub("", heading.strip()))


def _trailing_images(blocks: list[_Block]) -> list[str]:
    """Images after a section's last text: in the 2022+ layout they belong to the next section."""
    images: list[str] = []
    for block in reversed(blocks):
        if block.kind != "image":
            break
        images.append(block.lines[0])
    images.reverse()
    return images


def _news_item(
    section: _Section,
    title: str,
    carried_images: list[str],
    last_paragraph_commentary: bool,
    doc: _Document,
    keys: set[str],
) -> ParsedItem | None:
    links: list[str] = []
    source_name = source_url = ""
    body: list[tuple[str, str]] = []  # (text, block kind)
    commentary: list[str] = []
    own_images = [b.lines[0] for b in section.blocks if b.kind == "image"]
    trailing = len(_trailing_images(section.blocks))
    leading_image = (
        section.blocks[0].lines[0] if section.blocks and section.blocks[0].kind == "image" else None
    )

    for block in section.blocks:
        if block.kind == "image":
            continue
        text = _block_text(block, links)
        if not text:
            continue
        if text.startswith("消息来源"):
            source_name, source_url = _source_of(block)
            continue
        if _COMMENTARY_PREFIX.match(text):
            commentary.append(_COMMENTARY_PREFIX.sub("", text, count=1))
        else:
            body.append((text, block.kind))
    if not commentary and any(kind == "quote" for _, kind in body):
        # Autumn 2021: the blockquote itself is the commentary, without the 老王点评 prefix.
        commentary = [text for text, kind in body if kind == "quote"]
        body = [(text, kind) for text, kind in body if kind != "quote"]
    elif last_paragraph_commentary and not commentary and len(body) >= 2 and body[-1][1] == "para":
        commentary = [body.pop()[0]]
    summary = [text for text, _ in body]

    if not title:
        title = _first_sentence(summary[0]) if summary else ""
        if not title:
            return None
    if leading_image is not None:
        image: str | None = leading_image
    elif carried_images:
        image = carried_images[-1]
    else:
        usable = own_images[: len(own_images) - trailing] or own_images
        image = usable[0] if usable else None
    url = source_url or _first_external(links) or doc.permalink
    return ParsedItem(
        key=_unique_key("news", title, keys),
        title=title,
        url=url,
        links=_unique([url, *_web_urls(links)]),
        summary="\n".join(summary),
        commentary="\n".join(commentary),
        image=image,
        source=source_name or _source_name(url, doc),
        published_at=doc.published_at,
        tags=list(doc.tags),
        category=doc.category,
        kind="news",
        author=doc.author,
    )


def _echo_items(section: _Section, doc: _Document, keys: set[str]) -> list[ParsedItem]:
    """One follow-up item per bullet of a 回音 section (per paragraph when it has no bullets)."""
    entries: list[_Block] = [b for b in section.blocks if b.kind == "list"]
    if not entries:
        entries = [b for b in section.blocks if b.kind in ("para", "quote")]
    items: list[ParsedItem] = []
    for block in entries:
        links: list[str] = []
        text = _block_text(block, links, list_marker=False)
        title = _first_sentence(text)
        if not title:
            continue
        source_name, source_url = _source_of(block) if "消息来源" in text else ("", "")
        url = source_url or _first_external(links) or doc.permalink
        items.append(
            ParsedItem(
                key=_unique_key("echo", title, keys),
                title=title,
                url=url,
                links=_unique([url, *_web_urls(links)]),
                summary=text,
                source=source_name or _source_name(url, doc),
                published_at=doc.published_at,
                tags=list(doc.tags),
                category=doc.category,
                kind="echo",
                author=doc.author,
            )
        )
    return items


def _block_text(block: _Block, links: list[str], *, list_marker: bool = True) -> str:
    """Plain text of a block; links found on the way are appended to ``links``.

    A list item keeps a marker ("• " or its number) unless ``list_marker`` is False.
    """
    if block.kind == "code":
        return "\n".join(line for line in block.lines if not _CODE_FENCE.match(line)).strip("\n")
    if block.kind == "quote":
        return _quote_text(block.lines, links)
    if block.kind == "list":
        text = _list_text(block.lines, links)
        if not (text and list_marker):
            return text
        marker = _LIST_ITEM.match(block.lines[0])
        number = marker.group(0).strip() if marker else ""
        return f"{number} {text}" if number[:1].isdigit() else f"• {text}"
    return _inline_plain(" ".join(line.strip() for line in block.lines), links)


def _quote_text(lines: list[str], links: list[str]) -> str:
    parts: list[str] = []
    paragraph: list[str] = []
    code: list[str] | None = None
    for line in lines:
        content = _unquote(line)
        if code is not None:
            if _CODE_FENCE.match(content):
                parts.append("\n".join(code))
                code = None
            else:
                code.append(content)
            continue
        if _CODE_FENCE.match(content):
            if paragraph:
                parts.append(_inline_plain(" ".join(paragraph), links))
                paragraph = []
            code = []
        elif content.strip():
            paragraph.append(content.strip())
        elif paragraph:
            parts.append(_inline_plain(" ".join(paragraph), links))
            paragraph = []
    if code:
        parts.append("\n".join(code))
    if paragraph:
        parts.append(_inline_plain(" ".join(paragraph), links))
    return "\n".join(p for p in parts if p)


def _unquote(line: str) -> str:
    """A blockquote line without its ``>`` markers."""
    if line.startswith("> ") and not line.startswith("> >"):
        return line[2:]
    return _QUOTE_PREFIX.sub("", line, count=1)


def _list_text(lines: list[str], links: list[str]) -> str:
    return _inline_plain(" ".join(_LIST_ITEM.sub("", line, count=1).strip() for line in lines), links)


def _source_of(block: _Block) -> tuple[str, str]:
    """(name, absolute url) of a ``消息来源：NAME`` line, link optional."""
    raw = " ".join(_unquote(line).strip() for line in block.lines)
    found = _SOURCE_LINK.search(raw) or _SOURCE_LABELLED.search(raw)
    if found:
        return _clean_text(_inline_plain(found.group("name"), [])), _web_url(found.group("url"))
    plain = _SOURCE_PLAIN.match(_inline_plain(raw, []))
    return (plain.group("name").strip(), "") if plain else ("", "")


def _first_sentence(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    end = _SENTENCE_END.search(line)
    sentence = line[: end.end()] if end else line
    return sentence.strip().rstrip("。.").strip()


def _unique_key(prefix: str, title: str, keys: set[str]) -> str:
    """A key from the title, not the position, so reordering or inserting sections keeps keys."""
    normalised = " ".join(title.split()).casefold().encode("utf-8", "surrogatepass")
    base = f"{prefix}-{hashlib.blake2b(normalised, digest_size=5).hexdigest()}"
    key, n = base, 1
    while key in keys:
        n += 1
        key = f"{base}-{n}"
    keys.add(key)
    return key


# --- ordinary articles ------------------------------------------------------------------------


def _article_item(body: str, doc: _Document) -> ParsedItem:
    # In "\n" + body the newline before a line stands at that line's offset in body.
    footer = _LCTT_FOOTER.search("\n" + body, max(0, len(body) - _FOOTER_WINDOW))
    if footer is not None:
        body = body[: footer.start()]
    without_code = _without_fenced_code(body) if ("```" in body or "~~~" in body) else body
    links = [m.group(1) or m.group(2) or m.group(3) or "" for m in _BODY_LINK.finditer(without_code)]
    fromurl = _web_url(doc.fromurl)
    image = doc.image
    if image is None:
        found = _BODY_IMAGE.search(without_code)
        image = (_web_url(found.group(1)) or None) if found else None
    return ParsedItem(
        key="article",
        title=doc.title,
        url=doc.permalink,
        links=_unique([doc.permalink, fromurl, *_web_urls(links)]),
        summary=_clean_text(doc.summary) or _first_paragraph(_body_lines(body)),
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


def _first_paragraph(lines: list[str]) -> str:
    preamble, sections = _split_sections(lines)
    for block in [*preamble, *(b for s in sections for b in s.blocks)]:
        if block.kind == "para":
            text = _block_text(block, [])
            if text:
                return text
    return ""


# --- text and URL helpers ---------------------------------------------------------------------


def _inline_plain(text: str, links: list[str]) -> str:
    """Markdown/HTML inline text reduced to plain text; link targets are appended to ``links``."""
    if _INLINE_TRIGGER.search(text):
        text = _INLINE.sub(lambda m: _inline_replacement(m, links), text)
    if "&" in text:
        text = html.unescape(text)
    return _clean_text(text)


def _inline_replacement(m: re.Match[str], links: list[str]) -> str:
    if m.group("code") is not None:
        return m.group("code_text").strip()
    if m.group("src") is not None:
        return ""
    if m.group("text") is not None:
        links.append(m.group("href"))
        return _inline_plain(m.group("text"), links)
    if m.group("auto") is not None:
        links.append(m.group("auto"))
        return m.group("auto")
    if m.group("rb") is not None:
        base = _inline_plain(m.group("rb"), links)
        annotation = _clean_text(_TAG.sub("", m.group("rt")))
        return f"{base}（{annotation}）" if annotation else base
    if m.group("a_href") is not None:
        links.append(html.unescape(m.group("a_href")))
        return _inline_plain(m.group("a_text"), links)
    for name in ("strong_text", "del_text", "em_text", "em2_text"):
        inner = m.group(name)
        if inner is not None:
            return _inline_plain(inner, links)
    if m.group("escaped") is not None:
        return m.group("escaped")
    return ""  # any other HTML tag


def _clean_text(text: str) -> str:
    """Collapse spaces, drop the "?" left by stripped emoji and the "»" filler lines, per line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "?" in text:
        text = _EMOJI_MARK.sub("", text)
    if "\n" not in text and "»" not in text:
        return (_SPACES.sub(" ", text) if _needs_space_collapse(text) else text).strip()
    out = [_SPACES.sub(" ", line).strip() for line in text.split("\n") if not _GUILLEMET_LINE.match(line)]
    return "\n".join(line for line in out if line)


def _needs_space_collapse(text: str) -> bool:
    return "  " in text or "\t" in text or "\xa0" in text


def _web_url(link: str) -> str:
    """``link`` as an absolute http(s) URL (relative paths are on linux.cn); "" for anchors, mailto: etc."""
    link = link.strip()
    if not link or link.startswith("#"):
        return ""
    if link.startswith("//"):
        return "https:" + link
    scheme = _SCHEME.match(link)
    if scheme is None:
        return BASE_URL + (link if link.startswith("/") else "/" + link)
    is_web = scheme.group(1).lower() in ("http", "https") and link.startswith("//", scheme.end())
    return link if is_web else ""


def _web_urls(links: Iterable[str]) -> list[str]:
    return [url for url in map(_web_url, links) if url]


def _host(url: str) -> str:
    simple = _SIMPLE_HOST.match(url)  # what urlsplit(url).hostname is for nearly every link
    if simple is not None:
        host = simple.group(1)
    else:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            return ""
    return host.removeprefix("www.")


def _first_external(links: list[str]) -> str:
    """The first link that is not to linux.cn itself (those point at earlier stories)."""
    for url in _web_urls(links):
        if _host(url) != "linux.cn":
            return url
    return ""


def _source_name(url: str, doc: _Document) -> str:
    if url == doc.permalink or _host(url) == "linux.cn":
        return SITE_NAME
    return _host(url) or SITE_NAME


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
