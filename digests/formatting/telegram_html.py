"""Telegram's HTML dialect: its limits and tags, text it keeps, what it shows and how long that is.

Telegram's parser itself (TDLib) is used only by the tests, as an oracle for ``visible_length`` and
the markup produced here.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

# Characters Telegram drops or turns into spaces when a message is sent (TDLib fix_formatted_text):
# C0 controls except "\n", and U+2028..U+202E, U+030A, U+0333, U+033F. We drop them first so the
# text we measure is the text Telegram shows. C1 controls and DEL are invisible junk as well.
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028-\u202e\u030a\u0333\u033f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def telegram_safe(text: str) -> str:
    """Text Telegram keeps as it is: valid UTF-8, no control characters, "\\n" line ends."""
    if _SURROGATE.search(text):
        # Lone surrogates (bad decoding upstream) are not UTF-8: Telegram would reject the message.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _UNWANTED.sub("", text)


def clean_message_text(text: str | None) -> str:
    """Source text made ``telegram_safe`` and NFC (so "e" + U+0301 is one character, as in print)."""
    if not text:
        return ""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return telegram_safe(text)


def clean_message_block(text: str | None) -> str:
    """Multi-line text: clean, spaces collapsed, lines trimmed, at most one blank line in a row."""
    text = _INLINE_SPACE.sub(" ", clean_message_text(text))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def clean_message_line(text: str | None) -> str:
    """One line: clean, every run of whitespace (newlines included) made one space."""
    return " ".join(clean_message_text(text).split())


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


ALLOWED_TAGS = frozenset({"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                          "tg-spoiler", "code", "pre", "blockquote", "tg-emoji"})
_TAG = re.compile(
    r"""<(?P<end>/)?(?P<name>[A-Za-z][A-Za-z0-9-]*)"""
    r"""(?P<attrs>(?:\s+[A-Za-z][A-Za-z0-9_-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>]+))?)*)\s*>"""
)
_ATTR = re.compile(r"""([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>]+)))?""")
# Telegram decodes only these named entities (case-sensitive, ";" optional) and numeric ones.
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)(?![A-Za-z])|#[xX]([0-9A-Fa-f]+)|#([0-9]+));?")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_entity(match: re.Match[str]) -> str:
    name, hexa, dec = match.groups()
    if name:
        return _NAMED[name]
    code = int(hexa, 16) if hexa else int(dec)
    if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return chr(code)
    return match.group(0)


def unescape_telegram(text: str) -> str:
    """Decode HTML entities the way Telegram does (unknown named entities stay as they are)."""
    return _ENTITY.sub(_decode_entity, text) if "&" in text else text


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of Telegram HTML: kind "text" (decoded), "start" or "end"."""

    kind: str
    text: str = ""
    name: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


def tokenize_telegram_html(markup: str, *, strict: bool = True) -> Iterator[Token]:
    """Tokens of Telegram HTML; a "<" that opens no tag raises ValueError (Telegram rejects it),
    or is taken as text when not ``strict``."""
    pos = 0
    while pos < len(markup):
        lt = markup.find("<", pos)
        if lt < 0:
            yield Token("text", unescape_telegram(markup[pos:]))
            return
        if lt > pos:
            yield Token("text", unescape_telegram(markup[pos:lt]))
        match = _TAG.match(markup, lt)
        if not match:
            if strict:
                raise ValueError(f"unescaped '<' or malformed tag at offset {lt}")
            yield Token("text", "<")
            pos = lt + 1
            continue
        name = match.group("name").lower()
        if match.group("end"):
            yield Token("end", name=name)
        else:
            attrs = {m.group(1).lower(): unescape_telegram(m.group(2) or m.group(3) or m.group(4) or "")
                     for m in _ATTR.finditer(match.group("attrs"))}
            yield Token("start", name=name, attrs=attrs)
        pos = match.end()


def check_telegram_html(markup: str) -> str | None:
    """Why Telegram would reject this HTML (unknown tag, unbalanced nesting ...), or None."""
    stack: list[str] = []
    try:
        for token in tokenize_telegram_html(markup):
            if token.kind == "start":
                if token.name not in ALLOWED_TAGS:
                    return f"unsupported tag <{token.name}>"
                if token.name == "span" and token.attrs.get("class") != "tg-spoiler":
                    return '<span> needs class="tg-spoiler"'
                stack.append(token.name)
            elif token.kind == "end":
                if not stack:
                    return f"</{token.name}> closes nothing"
                if stack[-1] != token.name:
                    return f"</{token.name}> found where </{stack[-1]}> was expected"
                stack.pop()
    except ValueError as exc:
        return str(exc)
    if stack:
        return f"<{stack[-1]}> is never closed"
    return None


_SPACES_TO_TRIM = " \n"
# What Telegram does to the parsed text on sending: "\r" and U+2028..U+202E, U+030A, U+0333, U+033F
# are removed, other C0 controls (tab included) become spaces.
_SEND_DROPPED = re.compile("[\r\u2028-\u202e\u030a\u0333\u033f]")
_SEND_SPACED = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f]")


def visible_text(markup: str) -> str:
    """The plain text Telegram shows for this HTML: tags removed, entities decoded, ends trimmed."""
    pieces: list[str] = []
    open_at: list[int] = []  # plain-text offsets where the open tags start
    first_entity = None
    size = 0
    for token in tokenize_telegram_html(markup, strict=False):
        if token.kind == "text":
            text = _SEND_SPACED.sub(" ", _SEND_DROPPED.sub("", token.text))
            pieces.append(text)
            size += len(text)
        elif token.kind == "start":
            open_at.append(size)
        elif open_at:
            start = open_at.pop()
            # Telegram keeps leading spaces inside the first entity that holds more than spaces.
            if size > start and (first_entity is None or start < first_entity):
                content = "".join(pieces)[start:size]
                if content.strip(_SPACES_TO_TRIM):
                    first_entity = start
    text = "".join(pieces).rstrip(_SPACES_TO_TRIM)
    head = text[:first_entity] if first_entity is not None else text
    return head.lstrip(_SPACES_TO_TRIM) + text[len(head):]


@lru_cache(maxsize=256)
def visible_length(markup: str) -> int:
    """UTF-16 length of the text Telegram shows for this HTML (what its 4096/1024 limits count)."""
    return utf16_length(visible_text(markup))


def escape_text(text: str) -> str:
    """Text escaped for Telegram HTML (quotes too, so it is safe inside attributes as well)."""
    return html.escape(text, quote=False).replace('"', "&quot;")
