"""Telegram's own HTML parser (TDLib, through tdjson) as the oracle for what digests.formatting produces.

``parseTextEntities`` is the parser the Bot API runs on ``parse_mode=HTML``; what it does not do
is the clean-up on sending (TDLib ``fix_formatted_text``: "\\r" and a few invisible characters
removed, controls made spaces, spaces and newlines trimmed at both ends). ``sent_text`` repeats
that part here, written from TDLib's source and independent of ``digests.formatting.telegram_html``.
The TDLib calls themselves are in ``tests.tdlib``, shared with the fake Bot API.
"""

from __future__ import annotations

from typing import Any

from digests.formatting.blurb import Message
from digests.formatting.telegram_html import CAPTION_LIMIT, TEXT_LIMIT, visible_length
from tests.tdlib import HTML, TdlibError, get_text_entities, parse_text_entities, utf16_len


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """(plain text, entities) as Telegram parses ``text`` with parse_mode HTML; AssertionError if it rejects it."""
    try:
        return parse_text_entities(text, HTML)
    except TdlibError as err:
        raise AssertionError(f"Telegram rejects the HTML: {err}\n--- html ---\n{text}") from None


def find_entities(text: str) -> list[tuple[str, str]]:
    """(substring, entity type) of what Telegram auto-detects in plain text: hashtags, URLs ..."""
    try:
        entities = get_text_entities(text)
    except TdlibError as err:
        raise AssertionError(f"getTextEntities failed: {err}") from None
    units = text.encode("utf-16-le")
    return [(units[2 * e["offset"]:2 * (e["offset"] + e["length"])].decode("utf-16-le"), e["type"]["@type"])
            for e in entities]


def sent_text(text: str, entities: list[dict[str, Any]]) -> str:
    """The text Telegram shows after sending: TDLib's send-time clean-up of a parsed text."""
    units = text.encode("utf-16-le")

    def covers_non_space(e: dict[str, Any]) -> bool:
        content = units[2 * e["offset"]:2 * (e["offset"] + e["length"])].decode("utf-16-le", "replace")
        return bool(content.translate(_SPACE_LIKE).strip(" \n"))

    # Left trim stops where the first entity holding more than spaces begins.
    starts = [e["offset"] for e in entities if covers_non_space(e)]
    first_entity = min(starts) if starts else None
    kept: list[tuple[str, bool]] = []  # (character, lies before the first entity)
    offset = 0
    for c in text:
        code = ord(c)
        before = first_entity is None or offset < first_entity
        offset += 2 if code > 0xFFFF else 1
        if c == "\r" or 0x2028 <= code <= 0x202E or code in (0x030A, 0x0333, 0x033F):
            continue
        kept.append((" " if code < 0x20 and c != "\n" else c, before))
    while kept and kept[-1][0] in " \n":
        kept.pop()
    start = 0
    while start < len(kept) and kept[start][1] and kept[start][0] in " \n":
        start += 1
    return "".join(c for c, _ in kept[start:])


_SPACE_LIKE = {code: " " for code in [*range(0x00, 0x0A), 0x0B, 0x0C, *range(0x0E, 0x20)]}


def assert_valid_message(message: Message, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Telegram accepts ``message`` as it stands, within its limit, and ``visible_length`` agrees.

    With ``strict`` the parsed text also needs no send-time clean-up (so what we measured is
    exactly what readers see) and every ``<a href>`` became a link (no silently dropped URL).
    """
    text, entities = parse_html(message.html)
    shown = sent_text(text, entities)
    length = utf16_len(shown)
    limit = CAPTION_LIMIT if message.photo else TEXT_LIMIT
    assert shown.strip(), f"Telegram would reject an empty message:\n{message.html}"
    assert length <= limit, f"{length} UTF-16 units > {limit}:\n{message.html[:500]}"
    ours = visible_length(message.html)
    assert ours == length, f"visible_length {ours} != Telegram's {length}:\n{message.html[:500]}"
    assert message.length == length, f"Message.length {message.length} != Telegram's {length}"
    if strict:
        assert text == shown, f"Telegram would alter the text on sending:\n{text!r}\n{shown!r}"
        anchors = message.html.count("<a ")
        links = sum(1 for e in entities if e["type"]["@type"] == "textEntityTypeTextUrl")
        assert anchors == links, f"{anchors} <a> tags but {links} links survive Telegram's parser"
        if message.photo:
            assert message.photo.startswith(("http://", "https://")), message.photo
    return text, entities
