"""Sliding-window send limits: never more than N messages in any window, globally and per chat.

A sliding window is the strictest reading of Telegram's limits (30 messages a second overall,
20 a minute in one group or channel), so obeying it never earns a 429. Telegram counts a message
when it arrives, which is some time after we let it through and before its answer comes back;
so a send counts from the moment it is let through until a full window after its answer. Counted
from the moment it was let through alone, sends a window apart could arrive closer than that.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

_IN_FLIGHT_POLL = 0.01  # every counted send is still in flight: look again this soon


class SlidingWindow:
    """At most ``rate`` events in any ``period`` seconds; an event in flight counts until it is done."""

    def __init__(self, rate: float, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(1, int(rate))
        self.period = period
        self.clock = clock
        self._events: deque[float] = deque()  # when each finished event was done, in order
        self.in_flight = 0

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0] >= self.period:
            self._events.popleft()

    def wait_time(self) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        now = self.clock()
        self._trim(now)
        if len(self._events) + self.in_flight < self.rate:
            return 0.0
        if not self._events:
            return _IN_FLIGHT_POLL
        return self._events[0] + self.period - now

    def record(self) -> None:
        """One event let through; it counts until ``done()`` and then for a whole period."""
        self.in_flight += 1

    def done(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._events.append(self.clock())


class SendLimiter:
    """The global window plus one window per chat."""

    def __init__(self, global_per_second: float = 30, chat_per_minute: float = 20) -> None:
        self.overall = SlidingWindow(global_per_second, 1.0)
        self.chat_rate = chat_per_minute
        self._chats: dict[str, SlidingWindow] = {}
        self._lock = asyncio.Lock()

    def chat(self, chat_id: str) -> SlidingWindow:
        window = self._chats.get(chat_id)
        if window is None:
            window = self._chats[chat_id] = SlidingWindow(self.chat_rate, 60.0)
        return window

    def chat_wait(self, chat_id: str) -> float:
        return self.chat(chat_id).wait_time()

    async def acquire(self, chat_id: str) -> None:
        """Wait until one message to chat_id fits both windows, then count it (until ``done``)."""
        async with self._lock:
            while True:
                delay = max(self.overall.wait_time(), self.chat(chat_id).wait_time())
                if delay <= 0:
                    self.overall.record()
                    self.chat(chat_id).record()
                    return
                await asyncio.sleep(delay + 0.002)

    def done(self, chat_id: str) -> None:
        """The message let through by ``acquire`` was answered (or failed): it has arrived, if ever."""
        self.overall.done()
        self.chat(chat_id).done()

    async def acquire_overall(self) -> None:
        """Count one message in the global window only (a reply: bot.reply_limiter keeps its chat's window)."""
        async with self._lock:
            while (delay := self.overall.wait_time()) > 0:
                await asyncio.sleep(delay + 0.002)
            self.overall.record()

    def done_overall(self) -> None:
        self.overall.done()
