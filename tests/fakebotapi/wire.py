"""Bot API requests off the wire: query string and JSON, form or multipart bodies to parameters."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from tests.fakebotapi.errors import bad_request

# PTB sends form fields; non-string values arrive JSON-encoded, so each needs its declared type.
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "link_preview_options",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "results",
        "allowed_updates",
        "reply_parameters",
        "button",
        "message_ids",
        "media",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "disable_notification",
        "disable_web_page_preview",
        "protect_content",
        "show_alert",
        "is_personal",
        "drop_pending_updates",
        "allow_sending_without_reply",
        "has_spoiler",
        "show_caption_above_media",
        "allow_paid_broadcast",
    }
)
_INT_FIELDS = frozenset(
    {"message_id", "offset", "limit", "reply_to_message_id", "message_thread_id", "cache_time", "user_id",
     "max_connections"}
)
_FLOAT_FIELDS = frozenset({"timeout"})


@dataclass
class UploadedFile:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Call:
    """One decoded Bot API call, as a method handler sees it."""

    method: str
    bot: dict[str, Any]  # the bot's User object, as getMe answers
    params: dict[str, Any]
    received_at: float  # wall clock
    now: float  # monotonic clock, for rate limits and waits


def _header_param(header: str, name: str) -> str | None:
    match = re.search(rf'(?:^|;)\s*{name}="((?:[^"\\]|\\.)*)"', header) or re.search(
        rf"(?:^|;)\s*{name}=([^;\s]+)", header
    )
    return match.group(1) if match else None


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    boundary = _header_param(content_type, "boundary")
    if not boundary:
        raise ValueError("multipart body without boundary")
    fields: dict[str, Any] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _header_param(disposition, "name")
        if name is None:
            continue
        filename = _header_param(disposition, "filename")
        if filename is None and "content-type" not in headers:
            fields[name] = data.decode("utf-8")
        else:
            fields[name] = UploadedFile(filename, headers.get("content-type"), data)
    return fields


def _coerce(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name == "chat_id":
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    if name in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None
    if name in _BOOL_FIELDS:
        return value.lower() in ("true", "1")
    try:
        if name in _INT_FIELDS:
            return int(value)
        if name in _FLOAT_FIELDS:
            return float(value)
    except ValueError:
        raise bad_request(f'field "{name}" must be a number') from None
    return value


def decode_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """Bot API parameters from the query string and a JSON, form or multipart body."""
    raw: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    media_type = content_type.split(";", 1)[0].strip().lower()
    if body:
        if media_type == "application/json":
            try:
                loaded = json.loads(body)
            except ValueError:
                raise bad_request("invalid JSON body") from None
            if not isinstance(loaded, dict):
                raise bad_request("JSON body must be an object")
            raw.update(loaded)
        elif media_type == "multipart/form-data":
            raw.update(_parse_multipart(content_type, body))
        else:
            raw.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return {name: _coerce(name, value) for name, value in raw.items()}


def loggable(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` for the request log: uploads summarised, not kept."""
    return {
        k: (f"<file {v.filename!r}, {len(v.data)} bytes>" if isinstance(v, UploadedFile) else v)
        for k, v in params.items()
    }
