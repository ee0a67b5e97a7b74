"""Markdown newsletters (AI 简报 style): numbered heading-link items, then a bullet list of links.

Shape: no front matter, a ``[TOC]`` marker, an intro blockquote, items as
``# [N. title](url) | source`` each followed by an image, a blockquote of project/paper links
and prose; after the last ``---`` rule, a bullet list ``- [title](url) | source`` of further reads.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from digests.items import ParsedItem
from digests.parsers._frontmatter import has_front_matter
from digests.parsers._links import find_urls, host_of, is_http_url, unique, unwrap_redirect
from digests.parsers._markdown import CODE_FENCE, LIST_ITEM, QUOTE_MARKERS, RULE, markdown_inline_text
from digests.parsers._text import KeyMaker, clean_line, clip, midnight_in_shanghai

NAME = "newsletter"

_TOC_LINE = re.compile(r"^[ \t]*\[TOC\][ \t]*$", re.MULTILINE | re.IGNORECASE)
_HEADING_LINK = re.compile(r"^ {0,3}#{1,6}[ \t]*\[[^\n]*\]\(\s*<?https?://", re.MULTILINE | re.IGNORECASE)
_ITEM_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]*(?=\[)")
_BULLET_LINK = re.compile(r"^\s*(?:[-*+]|\d+[.)])[ \t]+(?=\[)")
_QUOTE = re.compile(r"^\s*>")
_NUMBER_PREFIX = re.compile(r"^\s*\d{1,3}\s*[.、．:：)）]\s*")
_SOURCE_SEPARATOR = re.compile(r"[|｜]")
_IMAGE = re.compile(r"!\[[^\]\n]*\]\(\s*<?(https?://[^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)", re.IGNORECASE)
# (?=\[) first: re skips to the next "[" instead of testing the lookbehind at every character.
_INLINE_LINK = re.compile(r"(?=\[)(?<!!)\[[^\]\n]*\]\(\s*<?(https?://[^)\s>]+)>?", re.IGNORECASE)
_ISSUE_DATE = re.compile(r"(20\d\d)(\d\d)(\d\d)\s*期|(20\d\d)[-./年](\d{1,2})[-./月](\d{1,2})日?\s*期")
_ISSUE_NAME = re.compile(r"本期为\s*([^，,。！!\d\n]{1,20}?)\s*20\d\d")
_BRACKETS = re.compile(r"\\.|[\[\]]", re.DOTALL)
_PARENTHESES = re.compile(r"[()]")
_TOC_MARKER = re.compile(r"^\s*\[TOC\]\s*$", re.IGNORECASE)


def sniff(text: str) -> bool:
    """Markdown without front matter holding a ``[TOC]`` marker or a ``# [title](url)`` heading."""
    if has_front_matter(text) or text.lstrip("\ufeff \t\r\n").startswith(("{", "<")):
        return False
    return bool(_TOC_LINE.search(text) or _HEADING_LINK.search(text))


def parse(text: str, *, path: str = "") -> list[ParsedItem]:
    """The numbered items, then each link of the closing bullet list."""
    lines = _without_code(text.splitlines())
    headings = []
    rules = []
    for index, line in enumerate(lines):
        head = line.lstrip()[:1]
        if head == "#":
            marker = _ITEM_HEADING.match(line)
            if marker and _link_at(line, marker.end()) is not None:
                headings.append(index)
        elif head in ("-", "*", "_") and RULE.match(line):
            rules.append(index)
    last_rule = rules[-1] if rules and (not headings or rules[-1] > headings[-1]) else len(lines)

    intro = "\n".join(lines[:headings[0] if headings else last_rule])
    published_at = _issue_date(intro)
    issue = _ISSUE_NAME.search(intro)
    category = clean_line(issue.group(1)) if issue else ""
    make_key = KeyMaker()
    items: list[ParsedItem] = []

    for n, start in enumerate(headings):
        end = min([headings[n + 1] if n + 1 < len(headings) else len(lines)]
                  + [r for r in rules if r > start])
        item = _numbered_item(lines[start], lines[start + 1:end])
        if item is not None:
            item.key, item.published_at, item.category = make_key(item.url), published_at, category
            items.append(item)

    for line in lines[last_rule + 1:]:
        bullet = _BULLET_LINK.match(line)
        if not bullet:
            continue
        item = _bullet_item(line, bullet.end())
        if item is not None:
            item.key, item.published_at, item.category = make_key(item.url), published_at, category
            items.append(item)
    return items


def _numbered_item(heading: str, body: list[str]) -> ParsedItem | None:
    """An item from its ``# [N. title](url) | source`` heading and the lines up to the next one."""
    marker = _ITEM_HEADING.match(heading)
    link = _link_at(heading, marker.end()) if marker else None
    if link is None:
        return None
    label, url, end = link
    title = _NUMBER_PREFIX.sub("", markdown_inline_text(label)) or markdown_inline_text(label)
    if not title:
        return None
    links = [url]
    images: list[str] = []
    prose: list[str] = []
    for line in body:
        if not line or line.isspace():
            continue
        if "http" in line:
            bare = line
            if "](" in line:
                images.extend(_IMAGE.findall(line))
                links.extend(_INLINE_LINK.findall(line))
                bare = _IMAGE.sub("", _INLINE_LINK.sub("", line))
            links.extend(find_urls(bare))
        if _QUOTE.match(line) or _TOC_MARKER.match(line):
            continue
        text = _prose_line(line)
        if text and not is_http_url(text):
            prose.append(text)
    return ParsedItem(
        key="",
        title=title,
        url=url,
        links=unique(unwrap_redirect(u) for u in links if is_http_url(unwrap_redirect(u))),
        summary=clip("\n".join(prose)),  # lines are clean already
        image=images[0] if images else None,
        source=_source_after(heading[end:]) or host_of(url),
        kind="news",
    )


def _bullet_item(line: str, start: int) -> ParsedItem | None:
    """A further-reading item from ``- [title](url) | source``."""
    link = _link_at(line, start)
    if link is None:
        return None
    label, url, end = link
    title = markdown_inline_text(label)
    if not title:
        return None
    return ParsedItem(key="", title=title, url=url, links=[url],
                      source=_source_after(line[end:]) or host_of(url), kind="link")


def _link_at(text: str, start: int) -> tuple[str, str, int] | None:
    """(label, absolute url, end index) of the Markdown link opening at ``text[start]``.

    Brackets and parentheses are matched with nesting, so a label may hold ``|``, ``[...]`` or
    ``(...)`` and a URL may hold balanced parentheses.
    """
    if start >= len(text) or text[start] != "[":
        return None
    label_end = _closing(text, start, _BRACKETS, "[")
    if label_end < 0 or label_end + 1 >= len(text) or text[label_end + 1] != "(":
        return None
    j = _closing(text, label_end + 1, _PARENTHESES, "(")
    if j < 0:
        return None
    destination = text[label_end + 2:j].strip()
    url = destination.split(None, 1)[0].strip("<>") if destination else ""
    url = unwrap_redirect(url)
    if not is_http_url(url):
        return None
    return text[start + 1:label_end], url, j + 1


def _closing(text: str, start: int, pattern: re.Pattern[str], opener: str) -> int:
    """Index of the bracket closing the one at ``text[start]``, or -1; backslash escapes skipped."""
    depth = 0
    for match in pattern.finditer(text, start):
        char = match.group(0)
        if char[0] == "\\":
            continue
        depth += 1 if char == opener else -1
        if depth == 0:
            return match.start()
    return -1


def _source_after(rest: str) -> str:
    """The source name after the last ``|`` that follows an item's link, if any."""
    parts = _SOURCE_SEPARATOR.split(rest)
    return markdown_inline_text(parts[-1]) if len(parts) > 1 else ""


def _prose_line(line: str) -> str:
    """A body line as plain text; images and bare link syntax dropped, bullets kept."""
    bullet = LIST_ITEM.match(line)
    if bullet:
        text = markdown_inline_text(line[bullet.end():])
        return f"• {text}" if text else ""
    return markdown_inline_text(QUOTE_MARKERS.sub("", line))


def _without_code(lines: list[str]) -> list[str]:
    """Lines with fenced code blocks blanked, so code never reads as headings, rules or links."""
    fence = ""
    kept = []
    for line in lines:
        if fence:
            if line.lstrip().startswith(fence):
                fence = ""
            kept.append("")
            continue
        match = CODE_FENCE.match(line) if "```" in line or "~~~" in line else None
        if match:
            fence = match.group(1)
            kept.append("")
            continue
        kept.append(line)
    return kept


def _issue_date(intro: str) -> datetime | None:
    """The issue date named in the intro ("本期为 AI 简报 20210409 期"), Asia/Shanghai midnight."""
    match = _ISSUE_DATE.search(intro)
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups() if g is not None)
    try:
        return midnight_in_shanghai(date(year, month, day))
    except ValueError:
        return None
