"""Sliding-window send limits: never more than N messages in any window, globally and per chat.

A sliding window is the strictest reading of Telegram's limits (30 messages a second overall,
20 a minute in one group or channel), so obeying it never earns a 429. Telegram counts a message
when it arrives, which is some time after we let it through and before its answer comes back;
so a send counts from the moment it is let through until a full window after its answer. Counted
from the moment it was let through alone, sends a window apart could arrive closer than that.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from digests.store import sendlog
from digests.store.db import Database

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

    def cancel(self) -> None:
        """The event let through never happened (nothing was sent): it stops counting at once."""
        self.in_flight = max(0, self.in_flight - 1)


class SendLimiter:
    """The global window plus one window per chat, in this process."""

    def __init__(self, global_per_second: float = 30, chat_per_minute: float = 20) -> None:
        self.overall = SlidingWindow(global_per_second, 1.0)
        self.chat_rate = chat_per_minute
        self._chats: dict[str, SlidingWindow] = {}
        self._lock = asyncio.Lock()
        # For full_chats: per chat, the sends its window counts (in flight, or answered within a
        # window and a second), and when each answered send stops counting.
        self._counted: dict[str, int] = {}
        self._answered: deque[tuple[float, str]] = deque()

    def chat(self, chat_id: str) -> SlidingWindow:
        window = self._chats.get(chat_id)
        if window is None:
            window = self._chats[chat_id] = SlidingWindow(self.chat_rate, 60.0)
        return window

    def chat_wait(self, chat_id: str) -> float:
        """Seconds until chat_id's window may have room (0: worth asking now); never blocks."""
        return self.chat(chat_id).wait_time()

    def full_chats(self) -> set[str]:
        """The chats whose window has no room now, without asking every chat's window.

        Asking each channel's window before each claim cost O(channels) a claim, most of the CPU
        with thousands of channels; a chat that counts fewer sends than its rate has room, so only
        the others are asked.
        """
        horizon = time.monotonic() - 61.0
        while self._answered and self._answered[0][0] < horizon:
            _, chat_id = self._answered.popleft()
            self._uncount(chat_id)
        return {chat_id for chat_id, count in self._counted.items()
                if count >= self.chat_rate and self.chat_wait(chat_id) > 0}

    def _uncount(self, chat_id: str) -> None:
        left = self._counted.get(chat_id, 0) - 1
        if left > 0:
            self._counted[chat_id] = left
        else:
            self._counted.pop(chat_id, None)

    async def try_acquire(self, chat_id: str) -> bool:
        """Count one message to chat_id (until ``done``) if its window has room, after waiting for the global one.

        False when the chat's window is full; ``chat_wait`` then says for how long.
        """
        async with self._lock:
            while True:
                if self.chat_wait(chat_id) > 0:
                    return False
                if (delay := self.overall.wait_time()) > 0:
                    await asyncio.sleep(delay + 0.002)
                    continue
                if not await self._reserve(chat_id):
                    continue
                self.overall.record()
                self.chat(chat_id).record()
                self._counted[chat_id] = self._counted.get(chat_id, 0) + 1
                return True

    async def acquire(self, chat_id: str) -> None:
        """Wait until one message to chat_id fits both windows, then count it (until ``done``)."""
        while not await self.try_acquire(chat_id):
            await asyncio.sleep(self.chat_wait(chat_id) + 0.002)

    async def done(self, chat_id: str) -> None:
        """The message let through by ``acquire`` was answered (or failed): it has arrived, if ever."""
        self.overall.done()
        self.chat(chat_id).done()
        self._answered.append((time.monotonic(), chat_id))
        await self._finish(chat_id)

    async def cancel(self, chat_id: str) -> None:
        """The message let through by ``try_acquire`` was never sent: its room is free again."""
        self.overall.cancel()
        self.chat(chat_id).cancel()
        self._uncount(chat_id)
        await self._cancel(chat_id)

    async def acquire_overall(self) -> None:
        """Count one message in the global window only (a reply: bot.reply_limiter keeps its chat's window)."""
        async with self._lock:
            while True:
                if (delay := self.overall.wait_time()) > 0:
                    await asyncio.sleep(delay + 0.002)
                elif await self._reserve(None):
                    self.overall.record()
                    return

    async def done_overall(self) -> None:
        self.overall.done()
        await self._finish(None)

    # What a limiter shared with other workers adds (SharedSendLimiter); alone, the windows above are all.

    async def _reserve(self, chat_id: str | None) -> bool:
        return True

    async def _finish(self, chat_id: str | None) -> None:
        return None

    async def _cancel(self, chat_id: str | None) -> None:
        return None


def bot_key(token: str) -> str:
    """The key of a bot's shared windows: a hash of the bot's id (the token's part before ':'), never the token."""
    bot_id = token.split(":", 1)[0]
    return hashlib.sha256(f"telegram-bot:{bot_id}".encode()).hexdigest()[:32]


class SharedSendLimiter(SendLimiter):
    """SendLimiter's windows shared with every worker of the bot through the database (digests.store.sendlog).

    The in-process windows stay in front as a fast path: what they refuse the shared ones would
    refuse too (they count the same sends, and the database's a little longer), so a worker that
    fills a window alone never asks the database. What they let through is reserved in the
    database; a full shared chat window is remembered until it may have room, so ``chat_wait``
    never blocks the event loop.
    """

    def __init__(self, db: Database, key: str, global_per_second: float = 30, chat_per_minute: float = 20, *,
                 in_flight_for: float = 80.0) -> None:
        super().__init__(global_per_second, chat_per_minute)
        self.db = db
        self.key = key
        self.windows = sendlog.Windows(chat_rate=max(1, int(chat_per_minute)), overall_rate=self.overall.rate,
                                       in_flight_for=timedelta(seconds=in_flight_for))
        self._full_until: dict[str, float] = {}  # chat -> (monotonic) when its shared window may have room
        self._held: dict[str | None, deque[int]] = {}  # reservations in flight, per chat (None: replies')

    def chat_wait(self, chat_id: str) -> float:
        until = self._full_until.get(chat_id)
        remote = 0.0 if until is None else until - time.monotonic()
        if until is not None and remote <= 0:
            del self._full_until[chat_id]
        return max(super().chat_wait(chat_id), remote)

    def full_chats(self) -> set[str]:
        """Also the chats whose shared window another worker filled."""
        return super().full_chats() | {chat_id for chat_id in list(self._full_until) if self.chat_wait(chat_id) > 0}

    async def _reserve(self, chat_id: str | None) -> bool:
        """Reserve in the shared windows; False after waiting, when only the global one was full."""
        got = await asyncio.to_thread(sendlog.reserve, self.db, self.key, chat_id, self.windows)
        if isinstance(got, int):
            self._held.setdefault(chat_id, deque()).append(got)
            return True
        if chat_id is not None and got.chat_wait > 0:
            self._full_until[chat_id] = time.monotonic() + got.chat_wait
            return False  # try_acquire sees chat_wait > 0 and says so
        await asyncio.sleep(got.overall_wait + 0.002)
        return False

    def _take(self, chat_id: str | None) -> int | None:
        held = self._held.get(chat_id)
        if not held:
            return None
        reservation = held.popleft()
        if not held:
            del self._held[chat_id]
        return reservation

    async def _finish(self, chat_id: str | None) -> None:
        if (reservation := self._take(chat_id)) is not None:
            await asyncio.to_thread(sendlog.finish, self.db, reservation, self.windows)

    async def _cancel(self, chat_id: str | None) -> None:
        if (reservation := self._take(chat_id)) is not None:
            await asyncio.to_thread(sendlog.cancel, self.db, reservation)
