"""The 硬核观察 column: each ``###`` section a news item, each bullet of a ``### 回音`` section a follow-up.

Items come without the article-wide fields (date, tags, category, author): the caller sets those.
"""

from __future__ import annotations

import hashlib
import re

from digests.items import ParsedItem
from digests.parsers._links import unique
from digests.parsers._linuxcn_blocks import (
    Block,
    Section,
    block_text,
    split_sections,
    trailing_images,
    unquote,
)
from digests.parsers._linuxcn_inline import (
    first_external,
    inline_plain,
    source_name,
    strip_artifacts,
    web_url,
    web_urls,
)

_HEADING_NUMBER = re.compile(r"^#\s*\d+[\s.、:：]*")
_ECHO_HEADING = re.compile(r"^(?:一句话)?回音\s*$")
_SOURCE_LINK = re.compile(
    r"\[\s*(?:\*\*)?消息来源\s*[：:]\s*(?P<name>[^\]]*?)\s*(?:\*\*)?\s*\]\(\s*<?(?P<url>[^)\s>]+)"
)
_SOURCE_LABELLED = re.compile(r"消息来源\s*[：:]\s*\[(?P<name>[^\]]+)\]\(\s*<?(?P<url>[^)\s>]+)")
_SOURCE_PLAIN = re.compile(r"^消息来源\s*[：:]\s*(?P<name>.+)$", re.MULTILINE)
_COMMENTARY_PREFIX = re.compile(r"^老王点评\s*[：:]?\s*")
_SENTENCE_END = re.compile(r"[。！？!?]+[”」』）)\"']*|\.(?=\s|$)")


def column_items(lines: list[str], permalink: str) -> list[ParsedItem]:
    """The items of a column post's body lines; links to nowhere else fall back to ``permalink``."""
    preamble, sections = split_sections(lines)
    news = [s for s in sections if not _ECHO_HEADING.match(_section_title(s.heading))]
    # Spring 2021 posts have no blockquotes at all: the commentary is the last plain paragraph.
    last_paragraph_commentary = not any(b.kind == "quote" for s in news for b in s.blocks)
    keys: set[str] = set()
    items: list[ParsedItem] = []
    carried_images = trailing_images(preamble)
    for section in sections:
        title = _section_title(section.heading)
        if _ECHO_HEADING.match(title):
            items.extend(_echo_items(section, permalink, keys))
        else:
            item = _news_item(section, title, carried_images, last_paragraph_commentary, permalink, keys)
            if item is not None:
                items.append(item)
        carried_images = trailing_images(section.blocks)
    return items


def _section_title(heading: str) -> str:
    return strip_artifacts(_HEADING_NUMBER.sub("", heading.strip()))


def _news_item(
    section: Section,
    title: str,
    carried_images: list[str],
    last_paragraph_commentary: bool,
    permalink: str,
    keys: set[str],
) -> ParsedItem | None:
    links: list[str] = []
    source, source_url = "", ""
    body: list[tuple[str, str]] = []  # (text, block kind)
    commentary: list[str] = []
    own_images = [b.lines[0] for b in section.blocks if b.kind == "image"]
    trailing = len(trailing_images(section.blocks))
    leading_image = (
        section.blocks[0].lines[0] if section.blocks and section.blocks[0].kind == "image" else None
    )

    for block in section.blocks:
        if block.kind == "image":
            continue
        text = block_text(block, links)
        if not text:
            continue
        if text.startswith("消息来源"):
            source, source_url = _source_of(block)
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
    return _linked_item("news", title, "\n".join(summary), links, source, source_url, permalink, keys,
                        commentary="\n".join(commentary), image=image)


def _echo_items(section: Section, permalink: str, keys: set[str]) -> list[ParsedItem]:
    """One follow-up item per bullet of a 回音 section (per paragraph when it has no bullets)."""
    entries: list[Block] = [b for b in section.blocks if b.kind == "list"]
    if not entries:
        entries = [b for b in section.blocks if b.kind in ("para", "quote")]
    items: list[ParsedItem] = []
    for block in entries:
        links: list[str] = []
        text = block_text(block, links, list_marker=False)
        title = _first_sentence(text)
        if not title:
            continue
        source, source_url = _source_of(block) if "消息来源" in text else ("", "")
        items.append(_linked_item("echo", title, text, links, source, source_url, permalink, keys))
    return items


def _linked_item(kind: str, title: str, summary: str, links: list[str], source: str, source_url: str,
                 permalink: str, keys: set[str], *, commentary: str = "", image: str | None = None) -> ParsedItem:
    """An item whose link is its 消息来源, else its first link off linux.cn, else the article."""
    url = source_url or first_external(links) or permalink
    return ParsedItem(
        key=_unique_key(kind, title, keys),
        title=title,
        url=url,
        links=unique([url, *web_urls(links)]),
        summary=summary,
        commentary=commentary,
        image=image,
        source=source or source_name(url, permalink),
        kind=kind,
    )


def _source_of(block: Block) -> tuple[str, str]:
    """(name, absolute url) of a ``消息来源：NAME`` line, link optional."""
    raw = " ".join(unquote(line).strip() for line in block.lines)
    found = _SOURCE_LINK.search(raw) or _SOURCE_LABELLED.search(raw)
    if found:
        return strip_artifacts(inline_plain(found.group("name"), [])), web_url(found.group("url"))
    plain = _SOURCE_PLAIN.match(inline_plain(raw, []))
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
