"""Telegram's flood control: sliding-window send limits, flood waits per chat, early retries.

A 429 tells the client how long to wait (``retry_after``, whole seconds). Until then the chat
stays in its flood wait, and resending the same content before the deadline is an early retry.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.fakebotapi.errors import ApiError
from tests.fakebotapi.wire import UploadedFile

# Methods that put something into a chat: they obey flood waits and count as early retries.
CHAT_WRITE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
        "editMessageReplyMarkup",
        "deleteMessage",
    }
)


@dataclass
class RateLimits:
    """Sliding-window limits on sent messages; None disables one.

    Telegram's private-chat guidance (about one message a second) is not enforced by default:
    Telegram tolerates short bursts there, and PTB's AIORateLimiter does not throttle them either.
    """

    global_limit: int | None = 30
    global_window: float = 1.0
    group_limit: int | None = 20  # groups, supergroups and channels
    group_window: float = 60.0
    private_limit: int | None = None
    private_window: float = 1.0


@dataclass
class Throttle:
    """One 429 answer: why it was sent and how long the client was told to wait."""

    method: str
    chat_id: int | str | None
    retry_after: int
    reason: str  # "rate_limit" | "injected" | "flood_wait" (a write to a chat inside its wait)
    at: float


def whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def write_fingerprint(method: str, params: dict[str, Any]) -> str | None:
    """What makes two chat writes "the same message" for early-retry detection; None for other calls."""
    if method not in CHAT_WRITE_METHODS:
        return None
    photo = params.get("photo")
    if isinstance(photo, UploadedFile):
        photo = hashlib.sha1(photo.data).hexdigest()
    body = [method, params.get("text"), params.get("caption"), photo, params.get("message_id")]
    if "media" in params:
        body.append(params["media"])
    return json.dumps(body, default=str, ensure_ascii=False)


class _Window:
    """Timestamps of accepted sends inside one sliding window."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def wait_needed(self, now: float, limit: int | None, window: float) -> float:
        while self.times and self.times[0] <= now - window:
            self.times.popleft()
        if limit is None or len(self.times) < limit:
            return 0.0
        return self.times[-limit] + window - now

    def add(self, now: float) -> None:
        self.times.append(now)


class RateLimiter:
    """Accepted sends, overall and per chat, against :class:`RateLimits` (read on every send)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._global = _Window()
        self._chats: dict[int, _Window] = {}

    def admit(self, chat_id: int, private: bool, now: float) -> None:
        """Count one send to ``chat_id`` at ``now``.

        Raises:
            ApiError: 429 with ``retry_after`` when a window is full; nothing is counted then.
        """
        limits = self.limits
        waits = [self._global.wait_needed(now, limits.global_limit, limits.global_window)]
        window = self._chats.setdefault(chat_id, _Window())
        if private:
            waits.append(window.wait_needed(now, limits.private_limit, limits.private_window))
        else:
            waits.append(window.wait_needed(now, limits.group_limit, limits.group_window))
        wait = max(waits)
        if wait > 0:
            raise ApiError(429, "Too Many Requests", {"retry_after": whole_seconds(wait)})
        self._global.add(now)
        window.add(now)


class FloodControl:
    """Flood waits per chat, the deadline each 429 announced, and every 429 sent."""

    def __init__(self) -> None:
        self.throttled: list[Throttle] = []
        self.early_retries = 0
        self._not_before: dict[int | str, float] = {}  # per chat: end of its flood wait
        self._told: dict[tuple[int | str, str], float] = {}  # per (chat, content): retry deadline announced

    def wait_left(self, chat_key: int | str, fingerprint: str, now: float) -> float | None:
        """Seconds left of the chat's flood wait, None outside one; counts a too-early resend."""
        told = self._told.get((chat_key, fingerprint))
        if told is not None and now < told:
            self.early_retries += 1
        not_before = self._not_before.get(chat_key)
        if not_before is not None and now < not_before:
            return not_before - now
        return None

    def throttle(
        self,
        method: str,
        chat_key: int | str | None,
        fingerprint: str | None,
        seconds: float,
        reason: str,
    ) -> ApiError:
        """Record a 429 telling the client to wait ``seconds`` (rounded up); returns the answer."""
        retry_after = whole_seconds(seconds)
        issued = time.monotonic()
        if chat_key is not None and fingerprint is not None:
            # The chat's flood wait keeps its deadline: answers during it report the rest, rounded up.
            current = self._not_before.get(chat_key)
            if current is None or current <= issued:
                self._not_before[chat_key] = issued + retry_after
            self._told[(chat_key, fingerprint)] = issued + retry_after
        self.throttled.append(Throttle(method, chat_key, retry_after, reason, time.time()))
        return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    def accepted(self, chat_key: int | str, fingerprint: str) -> None:
        """The write went through: a later resend of it is no longer early."""
        self._told.pop((chat_key, fingerprint), None)
