"""Telegram's errors read once: each maps to a delivery Outcome; the only code that reads their text."""

from __future__ import annotations

from datetime import timedelta

import httpx
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from digests.publishing.retry import Kind, Outcome

# Raised before the request could reach Telegram: safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_UNPARSABLE = ("can't parse entities", "can't find end", "unsupported start tag")
_CHAT_UNUSABLE = ("chat not found", "not enough rights", "chat_write_forbidden")
# Answers to edits and deletions of a sent message.
_NOT_MODIFIED = ("message is not modified",)
_MESSAGE_GONE = ("message to edit not found", "message to delete not found", "message_id_invalid")
_TOO_LATE = ("message can't be deleted",)
_OTHER_CONTENT = ("there is no text in the message to edit", "there is no caption in the message to edit",
                  "there is no media in the message to edit")
_PHOTO_REFUSED = ("wrong file identifier", "failed to get http url content", "wrong type of the web page content",
                  "photo_invalid_dimensions", "image_process_failed", "wrong remote file")


def outcome_of(exc: TelegramError, chat: str) -> Outcome:
    """The outcome of a request to ``chat`` that raised ``exc``."""
    if isinstance(exc, RetryAfter):
        return Outcome(Kind.FLOOD_WAIT, exc.message, chat, retry_after=_seconds(exc.retry_after))
    if isinstance(exc, Forbidden):
        return Outcome(Kind.FORBIDDEN, exc.message, chat)
    if isinstance(exc, BadRequest):  # a NetworkError subclass: read it first
        text = exc.message.lower()
        for needles, kind in ((_NOT_MODIFIED, Kind.NOT_MODIFIED), (_MESSAGE_GONE, Kind.MESSAGE_GONE),
                              (_TOO_LATE, Kind.TOO_LATE), (_OTHER_CONTENT, Kind.OTHER_CONTENT)):
            if any(s in text for s in needles):
                return Outcome(kind, exc.message, chat)
        if any(s in text for s in _UNPARSABLE):
            return Outcome(Kind.UNPARSABLE, exc.message, chat)
        if any(s in text for s in _CHAT_UNUSABLE):
            return Outcome(Kind.CHAT_UNUSABLE, exc.message, chat)
        return Outcome(Kind.BAD_REQUEST, exc.message, chat)
    if isinstance(exc, NetworkError):  # TimedOut included; the cause says whether the request left
        cause = exc.__cause__
        sent = cause is not None and not isinstance(cause, _NOT_SENT)
        return Outcome(Kind.MAYBE_SENT if sent else Kind.NOT_SENT, str(exc), chat)
    return Outcome(Kind.OTHER, str(exc), chat)


def photo_refused(exc: BadRequest) -> bool:
    """Telegram would not take the post's photo (the text alone may still go)."""
    text = exc.message.lower()
    return any(s in text for s in _PHOTO_REFUSED)


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
