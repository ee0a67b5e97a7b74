"""A linux.cn body as Markdown blocks: paragraphs, lists, quotes, code and images, in ``###`` sections.

A line scanner, never a Markdown parser, and laxer than CommonMark on purpose: the archive
indents fences, rules and list markers freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from digests.parsers._linuxcn_inline import inline_plain, web_url

_HEADING = re.compile(r"^ {0,3}###(?!#)[ \t]*(.*)$")
_CLOSING_HASHES = re.compile(r"[ \t]+#+[ \t]*$")
CODE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_CODE_FENCE_CLOSE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*$")
_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_IMAGE_LINE = re.compile(r"^[ \t]*!\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)[ \t]*$")
_ILLUSTRATION = re.compile(r"^[ \t]*\*?[ \t]*[（(]插图[：:].*[）)][ \t]*\*?[ \t]*$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[*+-]|\d{1,9}[.)])[ \t]+")
_RULE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_ANY_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*)$")


@dataclass(slots=True)
class Block:
    kind: str  # para | list | quote | code | image
    lines: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Section:
    heading: str
    blocks: list[Block]


def body_lines(body: str) -> list[str]:
    return body.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def split_sections(lines: list[str]) -> tuple[list[Block], list[Section]]:
    """Blocks before the first ``###`` heading, and the ``###`` sections (code fences respected)."""
    preamble: list[Block] = []
    sections: list[Section] = []
    blocks = preamble
    current: Block | None = None
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
                closing = _CODE_FENCE_CLOSE.match(unquote(line) if current.kind == "quote" else line)
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
                sections.append(Section(_CLOSING_HASHES.sub("", heading.group(1)), blocks))
                current = None
                continue
            other = _ANY_HEADING.match(line)
            if other:
                blocks.append(Block("para", [_CLOSING_HASHES.sub("", other.group(1))]))
                current = None
                continue
        elif first == ">":
            if current is None or current.kind != "quote":
                current = Block("quote")
                blocks.append(current)
            current.lines.append(line)
            if "``" in line or "~~" in line:
                marker = CODE_FENCE.match(unquote(line))
                if marker:
                    fence = marker.group(1)
            continue
        elif first in "`~":
            marker = CODE_FENCE.match(line)
            if marker:
                fence = marker.group(1)
                current = Block("code", [line])
                blocks.append(current)
                continue
        elif first == "!":
            image = _IMAGE_LINE.match(line)
            if image:
                url = web_url(image.group(1))
                if url:
                    blocks.append(Block("image", [url]))
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
                current = Block("list", [line])
                blocks.append(current)
                continue
        if current is None or current.kind not in ("para", "list"):
            current = Block("para")
            blocks.append(current)
        current.lines.append(line)
    return preamble, sections


def trailing_images(blocks: list[Block]) -> list[str]:
    """Images after a section's last text: in the 2022+ layout they belong to the next section."""
    images: list[str] = []
    for block in reversed(blocks):
        if block.kind != "image":
            break
        images.append(block.lines[0])
    images.reverse()
    return images


def block_text(block: Block, links: list[str], *, list_marker: bool = True) -> str:
    """Plain text of a block; links found on the way are appended to ``links``.

    A list item keeps a marker ("• " or its number) unless ``list_marker`` is False.
    """
    if block.kind == "code":
        return "\n".join(line for line in block.lines if not CODE_FENCE.match(line)).strip("\n")
    if block.kind == "quote":
        return _quote_text(block.lines, links)
    if block.kind == "list":
        text = _list_text(block.lines, links)
        if not (text and list_marker):
            return text
        marker = _LIST_ITEM.match(block.lines[0])
        number = marker.group(0).strip() if marker else ""
        return f"{number} {text}" if number[:1].isdigit() else f"• {text}"
    return inline_plain(" ".join(line.strip() for line in block.lines), links)


def _quote_text(lines: list[str], links: list[str]) -> str:
    parts: list[str] = []
    paragraph: list[str] = []
    code: list[str] | None = None
    for line in lines:
        content = unquote(line)
        if code is not None:
            if CODE_FENCE.match(content):
                parts.append("\n".join(code))
                code = None
            else:
                code.append(content)
            continue
        if CODE_FENCE.match(content):
            if paragraph:
                parts.append(inline_plain(" ".join(paragraph), links))
                paragraph = []
            code = []
        elif content.strip():
            paragraph.append(content.strip())
        elif paragraph:
            parts.append(inline_plain(" ".join(paragraph), links))
            paragraph = []
    if code:
        parts.append("\n".join(code))
    if paragraph:
        parts.append(inline_plain(" ".join(paragraph), links))
    return "\n".join(p for p in parts if p)


def unquote(line: str) -> str:
    """A blockquote line without its ``>`` markers."""
    if line.startswith("> ") and not line.startswith("> >"):
        return line[2:]
    return _QUOTE_PREFIX.sub("", line, count=1)


def _list_text(lines: list[str], links: list[str]) -> str:
    return inline_plain(" ".join(_LIST_ITEM.sub("", line, count=1).strip() for line in lines), links)


def first_paragraph(lines: list[str]) -> str:
    """The text of the body's first paragraph with any text."""
    preamble, sections = split_sections(lines)
    for block in [*preamble, *(b for s in sections for b in s.blocks)]:
        if block.kind == "para":
            text = block_text(block, [])
            if text:
                return text
    return ""
