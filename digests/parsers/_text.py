"""Text helpers shared by the format parsers: clean lines, clipping, HTML to text, keys, dates."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.builder._lxml import LXMLTreeBuilder
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from digests.parsers._links import INVISIBLE, is_http_url, unique

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    SHANGHAI: tzinfo = ZoneInfo("Asia/Shanghai")
except (ImportError, ZoneInfoNotFoundError):  # pragma: no cover - no tz database installed
    # China has kept UTC+8 without DST since 1991, so a fixed offset is exact for this archive.
    SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")

SUMMARY_LIMIT = 2000

_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")

_TRACKER_HOSTS = ("jintiankansha.me", "feedburner.com", "feedsportal.com", "pixel.wp.com",
                  "stats.wordpress.com", "google-analytics.com", "doubleclick.net",
                  "pixel.quantserve.com", "scorecardresearch.com")
_TRACKER_PATH = re.compile(r"/(?:rss_static|pixel|tracking|beacon)(?:/|\.|$)|/~r/", re.IGNORECASE)
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg",
                           "head", "title", "meta", "link", "button", "select", "textarea"})
_BLOCK_TAGS = frozenset({"p", "div", "section", "article", "header", "footer", "aside", "main",
                         "nav", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "dt", "dd",
                         "blockquote", "pre", "table", "tr", "hr", "figure", "figcaption",
                         "center", "address", "fieldset", "form", "body", "html"})
_CELL_TAGS = frozenset({"td", "th"})
# The tags html_text acts on, and the attributes it reads of each; every other tag (span, strong,
# font ...) only passes its contents through, so the tree is built without it.
_READ_ATTRIBUTES: dict[str, frozenset[str]] = {
    **dict.fromkeys(_SKIPPED_TAGS | _BLOCK_TAGS | _CELL_TAGS | {"br", "li"}, frozenset()),
    "a": frozenset({"href"}),
    "img": frozenset({"src", "data-src", "width", "height", "style"}),
}
_BLOCK_END = object()


def clean_line(text: str) -> str:
    """One line of text: invisible characters removed, runs of whitespace made one space."""
    return " ".join(INVISIBLE.sub("", text).split())


def clean_lines(lines: Iterable[str]) -> str:
    """Lines cleaned one by one, empty ones dropped, joined by newlines."""
    kept = (clean_line(line) for line in lines)
    return "\n".join(line for line in kept if line)


def clip(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters, at a sentence end when one is near."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(mark) for mark in ("。", "！", "？", "；", "!", "?", ". ", "\n"))
    if end >= limit // 2:
        return cut[:end + 1].rstrip()
    return cut[:limit - 1].rstrip() + "…"


def stable_key(*parts: str) -> str:
    """A short digest of ``parts``: the same inputs give the same key on every run."""
    return hashlib.sha1("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


class KeyMaker:
    """Keys from item URLs, made unique within one document by a ``-N`` suffix on repeats."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, identity: str) -> str:
        key = stable_key(identity)
        count = self._seen.get(key, 0) + 1
        self._seen[key] = count
        return key if count == 1 else f"{key}-{count}"


def midnight_in_shanghai(day: date) -> datetime:
    """00:00 of ``day`` in Asia/Shanghai, the archive's home timezone."""
    return datetime.combine(day, time(), tzinfo=SHANGHAI)


def is_tracking_image(src: str, width: str = "", height: str = "", style: str = "") -> bool:
    """True for 1x1 pixels and images served by known tracker hosts."""
    if width.strip().removesuffix("px") in ("0", "1") or height.strip().removesuffix("px") in ("0", "1"):
        return True
    compact = style.replace(" ", "").lower()
    if "width:1px" in compact or "height:1px" in compact or "display:none" in compact:
        return True
    try:
        parts = urlsplit(src)
        host = (parts.hostname or "").lower()
    except ValueError:
        return True
    if any(host == tracker or host.endswith("." + tracker) for tracker in _TRACKER_HOSTS):
        return "src=" not in parts.query  # an image proxy (get?src=...) is not a tracker
    return bool(_TRACKER_PATH.search(parts.path))


@dataclass(slots=True)
class HtmlText:
    """What a fragment of HTML shows: its text, its anchors (href, text) and its images."""

    text: str
    anchors: list[tuple[str, str]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


def html_text(fragment: str) -> HtmlText:
    """Visible text of an HTML fragment, one block per line; scripts, styles, trackers dropped."""
    if "<" not in fragment:  # plain text, perhaps with entities: no tree needed
        return HtmlText(clean_lines(html.unescape(fragment).splitlines()))
    soup = BeautifulSoup(fragment, builder=_TextTreeBuilder(multi_valued_attributes=None))
    out: list[str] = []
    anchors: list[tuple[str, str]] = []
    images: list[str] = []
    stack: list[object] = [soup]
    # An explicit stack instead of recursion: real WeChat HTML nests sections dozens deep.
    while stack:
        node = stack.pop()
        if node is _BLOCK_END:
            out.append("\n")
            continue
        if isinstance(node, tuple):  # end of an <a>: its text is what was emitted since it opened
            href, start = node
            anchors.append((href, clean_line("".join(out[start:]))))
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, (Comment, Declaration, Doctype, ProcessingInstruction)):
                out.append(_SPACES.sub(" ", str(node)))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in _SKIPPED_TAGS:
            continue
        if name == "br":
            out.append("\n")
            continue
        if name == "img":
            src = _attr(node, "src") or _attr(node, "data-src")
            if is_http_url(src) and not is_tracking_image(
                    src, _attr(node, "width"), _attr(node, "height"), _attr(node, "style")):
                images.append(src)
            continue
        if name == "a":
            href = _attr(node, "href").strip()
            if is_http_url(href):
                stack.append((href, len(out)))
        elif name == "li":
            out.append("\n• ")
            stack.append(_BLOCK_END)
        elif name in _BLOCK_TAGS:
            out.append("\n")
            stack.append(_BLOCK_END)
        elif name in _CELL_TAGS:
            out.append(" ")
        stack.extend(reversed(node.contents))
    lines = "".join(out).split("\n")
    text = clean_lines(line for line in lines if line.strip() not in ("•", ""))
    return HtmlText(text, anchors, unique(images))


class _TextTreeBuilder(LXMLTreeBuilder):
    """BeautifulSoup's lxml HTML builder, building only the tags and attributes html_text reads.

    A WeChat article is hundreds of styled <span> and <section> wrappers with five attributes
    each: building a Tag for each cost more than the rest of html_text. lxml still parses the
    whole markup; what a skipped tag held becomes part of its parent's text, as html_text would
    have read it anyway.
    """

    def start(self, tag: Any, attrib: Any, nsmap: Any = {}) -> None:  # noqa: B006 (lxml's signature)
        wanted = _READ_ATTRIBUTES.get(tag)
        if wanted is not None:
            super().start(tag, {k: v for k, v in attrib.items() if k in wanted} if wanted else {}, nsmap)

    def end(self, tag: Any) -> None:
        if tag in _READ_ATTRIBUTES:
            super().end(tag)


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    if isinstance(value, list):
        return " ".join(value)
    return value or ""
