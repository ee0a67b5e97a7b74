"""Formatted text as Telegram reads it: TDLib parses the markup, Bot API entities come out.

Limits are in UTF-16 code units, as Telegram counts them.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakebotapi.errors import bad_request
from tests.tdlib import (
    HTML,
    MARKDOWN,
    MARKDOWN_V2,
    TdlibError,
    get_text_entities,
    parse_text_entities,
    utf16_len,
)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

_TD_ENTITY_TYPES = {
    "textEntityTypeBold": "bold",
    "textEntityTypeItalic": "italic",
    "textEntityTypeUnderline": "underline",
    "textEntityTypeStrikethrough": "strikethrough",
    "textEntityTypeSpoiler": "spoiler",
    "textEntityTypeCode": "code",
    "textEntityTypePre": "pre",
    "textEntityTypePreCode": "pre",
    "textEntityTypeTextUrl": "text_link",
    "textEntityTypeMentionName": "text_mention",
    "textEntityTypeCustomEmoji": "custom_emoji",
    "textEntityTypeBlockQuote": "blockquote",
    "textEntityTypeExpandableBlockQuote": "expandable_blockquote",
    "textEntityTypeUrl": "url",
    "textEntityTypeEmailAddress": "email",
    "textEntityTypeMention": "mention",
    "textEntityTypeHashtag": "hashtag",
    "textEntityTypeCashtag": "cashtag",
    "textEntityTypeBotCommand": "bot_command",
    "textEntityTypePhoneNumber": "phone_number",
}
# Telegram does not auto-detect links or mentions inside these.
_OPAQUE_ENTITIES = frozenset({"code", "pre", "text_link", "text_mention"})

_TD_PARSE_MODES = {"html": HTML, "markdownv2": MARKDOWN_V2, "markdown": MARKDOWN}


def _bot_api_entity(td_entity: dict[str, Any]) -> dict[str, Any] | None:
    td_type = td_entity["type"]
    kind = _TD_ENTITY_TYPES.get(td_type["@type"])
    if kind is None:
        return None
    entity: dict[str, Any] = {"type": kind, "offset": td_entity["offset"], "length": td_entity["length"]}
    if td_type.get("language"):
        entity["language"] = td_type["language"]
    if "url" in td_type:
        entity["url"] = td_type["url"]
    if "user_id" in td_type:
        entity["user"] = {
            "id": td_type["user_id"],
            "is_bot": False,
            "first_name": f"User {td_type['user_id']}",
        }
    if "custom_emoji_id" in td_type:
        entity["custom_emoji_id"] = str(td_type["custom_emoji_id"])
    return entity


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["offset"] < b["offset"] + b["length"] and b["offset"] < a["offset"] + a["length"]


def detect_entities(text: str, explicit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Explicit entities plus the links, mentions, hashtags and commands Telegram finds itself."""
    try:
        found = get_text_entities(text)
    except TdlibError:
        found = []  # Telegram's own detection never fails a send
    detected = []
    for td_entity in found:
        entity = _bot_api_entity(td_entity)
        if entity and not any(
            _overlaps(entity, e) and (e["type"] in _OPAQUE_ENTITIES or e["type"] == entity["type"])
            for e in explicit
        ):
            detected.append(entity)
    return sorted(explicit + detected, key=lambda e: (e["offset"], -e["length"]))


def parse_formatted_text(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Parse ``text`` as Telegram would; returns (plain text, Bot API entities).

    Raises:
        ApiError: 400 "can't parse entities: ..." with TDLib's reason.
    """
    mode = (parse_mode or "").lower()
    if mode == "":
        return text, detect_entities(text, list(entities or []))
    if mode not in _TD_PARSE_MODES:
        raise bad_request("unsupported parse_mode")
    try:
        plain, td_entities = parse_text_entities(text, _TD_PARSE_MODES[mode])
    except TdlibError as err:
        reason = re.sub(r"^Can't parse entities: ", "", str(err))
        raise bad_request(f"can't parse entities: {reason}") from None
    explicit = [e for e in map(_bot_api_entity, td_entities) if e]
    return plain, detect_entities(plain, explicit)


def parse_within_limit(
    text: str, parse_mode: str | None, entities: Any, limit: int, what: str
) -> tuple[str, list[dict[str, Any]]]:
    """:func:`parse_formatted_text`, then 400 "<what> is too long" past ``limit`` UTF-16 units."""
    plain, parsed = parse_formatted_text(text, parse_mode, entities if isinstance(entities, list) else None)
    if utf16_len(plain) > limit:
        raise bad_request(f"{what} is too long")
    return plain, parsed
