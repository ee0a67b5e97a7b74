"""Telegram's errors read once: a delivery Outcome, or at start-up what is wrong; the only code reading their text."""

from __future__ import annotations

import os
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

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


class TelegramUnusable(Exception):
    """Telegram cannot be used as configured; ``final`` when only a change of config.yaml can help."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


def unusable(exc: TelegramError, base_url: str, token: str) -> TelegramUnusable:
    """What a failed getMe (or any first request) says is wrong, in words an operator acts on; never the token."""
    host = _host(base_url)
    if isinstance(exc, InvalidToken):  # PTB raises it for 404 and 401 alike
        # Bot.initialize raises a new one (naming the token) from the answer's
        answer = exc.__cause__ if isinstance(exc.__cause__, InvalidToken) else exc
        text = answer.message.lower()
        if "not found" in text or "(404)" in text:
            return TelegramUnusable(f"{host} answered 404: is telegram.base_url right? (Telegram also answers "
                                    "404 to a malformed telegram.token)", final=True)
        return TelegramUnusable("Telegram rejected the token (telegram.token)", final=True)
    if isinstance(exc, RetryAfter):
        return TelegramUnusable(f"{host} asked to wait {_seconds(exc.retry_after):g} s (429)", final=False)
    if isinstance(exc, TimedOut):
        return TelegramUnusable(f"cannot reach Telegram at {host}: no answer in time", final=False)
    if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):
        if isinstance(exc.__cause__, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return TelegramUnusable(f"telegram.base_url {base_url!r} is no http:// or https:// URL", final=True)
        reason = _os_reason(exc)
        if reason is None and isinstance(exc.__cause__, httpx.TransportError):  # e.g. the connection closed
            reason = _scrub(str(exc.__cause__) or type(exc.__cause__).__name__, token)
        if reason is not None:
            return TelegramUnusable(f"cannot reach Telegram at {host}: {reason}", final=False)
        # an HTTP answer that is no Bot API error: a 5xx of Telegram or of a proxy on the way
        return TelegramUnusable(f"{host} answered {_scrub(exc.message, token)}", final=False)
    return TelegramUnusable(f"{host} refused the bot: {_scrub(exc.message, token)}", final=True)


def _host(base_url: str) -> str:
    parts = urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:  # not a number: the URL as given says more
        return repr(base_url)
    if not parts.hostname:
        return repr(base_url)
    return f"{parts.hostname}:{port}" if port else parts.hostname


def _os_reason(exc: BaseException) -> str | None:
    """The system's words for the innermost OSError behind exc ("connection refused"), if there is one."""
    reason = None
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and (cause.errno or cause.strerror):
            # a positive errno reads best from the system ("Connection refused"); a resolver's
            # (negative) only in its own strerror ("Name or service not known")
            text = os.strerror(cause.errno) if cause.errno and cause.errno > 0 else str(cause.strerror)
            reason = text[:1].lower() + text[1:]
        cause = cause.__cause__ or cause.__context__
    return reason


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "<telegram.token>") if token else text
