"""The rate limiter PTB applies to the bot's requests: Telegram's limits kept, 429s waited out and retried.

Every request of the Application's bot passes here (``ApplicationBuilder.rate_limiter``) but
getUpdates. Channel posts are the publisher's: its SendLimiter (bot/ratelimit.py) counted them
already and it decides itself what a 429 means for a post, so requests made inside
``publisher_request`` pass untouched. Everything else (replies, edits, answers to buttons and
inline queries, admin notices) waits for room in its chat's window (a private chat: about one a
second, in bursts of a few; a group: 20 a minute) and in the global window it shares with the
publisher (30 a second), so the two together stay under Telegram's limit and neither starves
the other. A 429 is waited out for exactly its retry_after (the chat's later requests too), then
the request is sent again, up to ``max_retries`` times; after that its error reaches the handler,
and so the error handler, which apologises and tells the admins.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.ratelimit import SendLimiter, SlidingWindow

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Result = Any  # what the Bot API answered: True, a dict, a list of dicts
PRIVATE_BURST = 5  # a private chat: at most this many messages in any as many seconds
MAX_RETRIES = 5
_MAX_CHATS = 4096  # windows kept before idle ones are forgotten

_PUBLISHER: ContextVar[bool] = ContextVar("publisher_request", default=False)


def publisher_request(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Mark the requests ``fn`` makes as the publisher's: counted by its SendLimiter, its own 429s."""

    @functools.wraps(fn)
    async def marked(*args: P.args, **kwargs: P.kwargs) -> T:
        token = _PUBLISHER.set(True)
        try:
            return await fn(*args, **kwargs)
        finally:
            _PUBLISHER.reset(token)

    return marked


def _chat_key(chat_id: object) -> tuple[str, bool]:
    """(window key, private?) of a chat_id: users have positive ids; groups, channels and @names not."""
    text = str(chat_id).strip()
    private = text.isascii() and text.isdigit()
    return text, private


class ReplyLimiter(BaseRateLimiter[int]):
    """Telegram's limits for everything but channel posts; ``rate_limit_args`` overrides max_retries."""

    def __init__(self, shared: SendLimiter | None = None, *, group_per_minute: float = 20,
                 max_retries: int = MAX_RETRIES, clock: Callable[[], float] = time.monotonic) -> None:
        self.shared = shared or SendLimiter()
        self.group_per_minute = group_per_minute
        self.max_retries = max_retries
        self.clock = clock
        self._windows: dict[str, SlidingWindow] = {}
        self._last_done: dict[str, float] = {}
        self._held: dict[str, float] = {}  # chat -> until when a 429 holds its requests

    def share(self, limiter: SendLimiter) -> None:
        """Count in the publisher's global window from now on (it exists only once the bot does)."""
        self.shared = limiter

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        if _PUBLISHER.get():
            return await callback(*args, **kwargs)
        chat_id = data.get("chat_id")
        chat = _chat_key(chat_id) if chat_id not in (None, "") else None
        counted = chat is not None and not endpoint.startswith("get")  # reads are no messages
        retries = max(0, self.max_retries if rate_limit_args is None else rate_limit_args)
        for attempt in range(retries + 1):
            if chat is not None:
                await self._wait_for_hold(chat[0])
            if counted:
                assert chat is not None
                await self._acquire(*chat)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt >= retries:
                    log.error("429 on %s for chat %s after %d retries: giving up", endpoint, chat_id, retries)
                    raise
                wait = _seconds(exc.retry_after)
            finally:  # counted from its send until a window after its answer, whatever it was
                if counted:
                    assert chat is not None
                    self._window(*chat).done()
                    self._last_done[chat[0]] = self.clock()
                    await self.shared.done_overall()
            log.warning("429 on %s for chat %s: sending again in %g s (retry %d of %d)", endpoint, chat_id, wait,
                        attempt + 1, retries)
            if chat is not None:  # Telegram refuses the chat anything until then
                self._held[chat[0]] = max(self._held.get(chat[0], 0.0), self.clock() + wait)
                await self._wait_for_hold(chat[0])
            else:
                await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _wait_for_hold(self, key: str) -> None:
        while (until := self._held.get(key)) is not None:
            delay = until - self.clock()
            if delay <= 0:
                self._held.pop(key, None)
                return
            await asyncio.sleep(delay)

    async def _acquire(self, key: str, private: bool) -> None:
        """Wait for room in the chat's window, then in the global one; both count the message until done."""
        window = self._window(key, private)
        while (delay := window.wait_time()) > 0:
            await asyncio.sleep(delay + 0.002)
        window.record()  # at once, with no await in between: no other request took the room
        try:
            await self.shared.acquire_overall()
        except BaseException:
            window.done()
            raise

    def _window(self, key: str, private: bool) -> SlidingWindow:
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= _MAX_CHATS:
                self._forget_idle()
            rate, period = (PRIVATE_BURST, float(PRIVATE_BURST)) if private else (self.group_per_minute, 60.0)
            window = self._windows[key] = SlidingWindow(rate, period, self.clock)
        return window

    def _forget_idle(self) -> None:
        """Drop the windows of chats with nothing counted any more (a window after their last message)."""
        now = self.clock()
        for key, window in list(self._windows.items()):
            if window.in_flight == 0 and now - self._last_done.get(key, now) >= window.period:
                del self._windows[key]
                self._last_done.pop(key, None)


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
