"""linux.cn inline Markdown and HTML to plain text, and its links made absolute.

Precompiled regexes only: ingest must stay within a few times the cost of the YAML front matter.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from digests.parsers._links import host_of

BASE_URL = "https://linux.cn"
SITE_NAME = "Linux 中国"

# Every open-ended span below has an upper bound: an unclosed "<ruby>" or "![" repeated
# thousands of times in a damaged file must cost linear, not quadratic, time.
LINK_TEXT = r"(?:[^\[\]]|\[[^\[\]]{0,300}\]){0,1000}"
LINK_TARGET = r"[^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*"
# Every alternative of _INLINE opens with one of these; the lookahead says so up front: without it
# re tries all twelve alternatives at every position of the text (two open with a lookbehind,
# which keeps re from skipping ahead by itself).
_INLINE_OPENER = r"[`!\[<*_~\\]"
_INLINE = re.compile(
    rf"(?={_INLINE_OPENER})(?:"
    r"(?P<code>`+)(?P<code_text>.{1,2000}?)(?P=code)"
    r"|!\[[^\]]{0,1000}\]\(\s*<?(?P<src>[^)\s>]*)>?[^)]{0,300}\)"
    rf"|\[(?P<text>{LINK_TEXT})\]"
    rf"\(\s*<?(?P<href>{LINK_TARGET})>?(?:\s+(?:\"[^\"]{{0,300}}\"|'[^']{{0,300}}'))?\s*\)"
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
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def inline_plain(text: str, links: list[str]) -> str:
    """Markdown/HTML inline text reduced to plain text; link targets are appended to ``links``."""
    if _INLINE_TRIGGER.search(text):
        text = _INLINE.sub(lambda m: _inline_replacement(m, links), text)
    if "&" in text:
        text = html.unescape(text)
    return strip_artifacts(text)


def _inline_replacement(m: re.Match[str], links: list[str]) -> str:
    if m.group("code") is not None:
        return m.group("code_text").strip()
    if m.group("src") is not None:
        return ""
    if m.group("text") is not None:
        links.append(m.group("href"))
        return inline_plain(m.group("text"), links)
    if m.group("auto") is not None:
        links.append(m.group("auto"))
        return m.group("auto")
    if m.group("rb") is not None:
        base = inline_plain(m.group("rb"), links)
        annotation = strip_artifacts(_TAG.sub("", m.group("rt")))
        return f"{base}（{annotation}）" if annotation else base
    if m.group("a_href") is not None:
        links.append(html.unescape(m.group("a_href")))
        return inline_plain(m.group("a_text"), links)
    for name in ("strong_text", "del_text", "em_text", "em2_text"):
        inner = m.group(name)
        if inner is not None:
            return inline_plain(inner, links)
    if m.group("escaped") is not None:
        return m.group("escaped")
    return ""  # any other HTML tag


def strip_artifacts(text: str) -> str:
    """Per line: spaces collapsed, the "?" left by stripped emoji and "»" filler lines dropped."""
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


def web_url(link: str) -> str:
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


def web_urls(links: Iterable[str]) -> list[str]:
    return [url for url in map(web_url, links) if url]


def first_external(links: list[str]) -> str:
    """The first link that is not to linux.cn itself (those point at earlier stories)."""
    for url in web_urls(links):
        if host_of(url) != "linux.cn":
            return url
    return ""


def source_name(url: str, permalink: str) -> str:
    """Who an item's link is from: its host, or linux.cn itself for the article's own pages."""
    if url == permalink or host_of(url) == "linux.cn":
        return SITE_NAME
    return host_of(url) or SITE_NAME
