"""TDLib's synchronous requests through tdjson: the text parser Telegram itself runs.

Shared by the fake Bot API (which parses what the bot sends as Telegram would) and the
formatting oracle (which checks what blurb.py produces against the same parser).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import tdjson

HTML: dict[str, Any] = {"@type": "textParseModeHTML"}
MARKDOWN_V2: dict[str, Any] = {"@type": "textParseModeMarkdown", "version": 2}
MARKDOWN: dict[str, Any] = {"@type": "textParseModeMarkdown", "version": 1}

# Serialised: the fake calls in from many server threads, and nothing promises the binding is thread-safe.
_LOCK = threading.Lock()


class TdlibError(Exception):
    """TDLib answered a request with an error; the message is TDLib's own."""


def td_execute(query: dict[str, Any]) -> dict[str, Any]:
    """Run a synchronous TDLib request; tdjson returns bytes (older builds: str, dict or None)."""
    with _LOCK:
        raw: Any = tdjson.td_execute(json.dumps(query).encode("utf-8"))
    if raw is None:
        raise TdlibError(f"TDLib returned nothing for {query['@type']}")
    if isinstance(raw, dict):
        return raw
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw)


# TDLib logs every synchronous request to stderr at its default verbosity; keep errors only.
td_execute({"@type": "setLogVerbosityLevel", "new_verbosity_level": 1})


def _answer(query: dict[str, Any]) -> dict[str, Any]:
    answer = td_execute(query)
    if answer.get("@type") == "error":
        raise TdlibError(answer.get("message", ""))
    return answer


def parse_text_entities(text: str, parse_mode: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(plain text, TDLib entities) of ``text`` in ``parse_mode`` (HTML, MARKDOWN_V2, MARKDOWN).

    Raises:
        TdlibError: the markup does not parse, e.g. "Can't parse entities: ...".
    """
    answer = _answer({"@type": "parseTextEntities", "text": text, "parse_mode": parse_mode})
    return answer["text"], answer.get("entities", [])


def get_text_entities(text: str) -> list[dict[str, Any]]:
    """TDLib entities Telegram auto-detects in plain text: URLs, mentions, hashtags, commands ...

    Raises:
        TdlibError: TDLib refused the text (e.g. not valid UTF-8).
    """
    return _answer({"@type": "getTextEntities", "text": text}).get("entities", [])


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (and TDLib's entity offsets): UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2
