"""The only code that sends posts to Telegram: claim a post, send it, record what happened."""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from telegram import Bot, LinkPreviewOptions
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot import metrics
from bot.ratelimit import SendLimiter
from digests.channels import all_channels, get_channel, set_paused, settings_of
from digests.config import Config
from digests.formatting.render import make_renderer
from digests.publishing import delivery
from digests.publishing.commentator import fill_missing_commentary, make_commentator
from digests.store.db import Database
from digests.store.models import Channel, Post, utcnow

log = logging.getLogger(__name__)

# Errors raised before the request could reach Telegram: safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_TAG = re.compile(r"<[^>]+>")


def html_to_plain(text: str) -> str:
    """Telegram HTML reduced to the text a reader sees (for the can't-parse-entities fallback)."""
    return html.unescape(_TAG.sub("", text))


def chat_ref(chat_id: str) -> int | str:
    return int(chat_id) if re.fullmatch(r"-?\d+", chat_id) else chat_id


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class PublishStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    flood_waits: int = 0
    plain_fallbacks: int = 0
    errors: list[str] = field(default_factory=list)


Notifier = Callable[[str], Awaitable[None]]


class Publisher:
    """Turns due slots into posts and posts into Telegram messages, recording every outcome."""

    def __init__(self, db: Database, config: Config, bot: Bot | None, *, dry_run: bool = False,
                 notify: Notifier | None = None, echo: Callable[[str, Post], None] | None = None,
                 worker: str | None = None, concurrency: int | None = None) -> None:
        self.db = db
        self.config = config
        self.bot = bot
        self.dry_run = dry_run or bot is None
        self.notify = notify
        self.echo = echo
        self.worker = worker or worker_name()
        self.concurrency = concurrency or config.publish.concurrency
        self.limiter = SendLimiter(config.limits.global_per_second, config.limits.channel_per_minute)
        self.render = make_renderer()
        self.commentator = make_commentator(config.commentator)
        self.hold_until: datetime | None = None  # after a 429 nothing is sent before this
        self.stats = PublishStats()
        self._channels: dict[int, Channel] = {}

    # -- planning ----------------------------------------------------------------------------

    async def run_slot(self, channel_name: str, *, slot_at: datetime | None = None,
                       now: datetime | None = None) -> list[Post]:
        """Plan one slot of a channel and send what it planned (and anything else due)."""
        if self.commentator is not None:
            await asyncio.to_thread(self._draft_commentary, channel_name)
        posts = await asyncio.to_thread(
            delivery.plan_slot, self.db, channel_name, self.render, now=now, slot_at=slot_at,
            dry_run=self.dry_run,
        )
        if self.dry_run:
            for post in posts:
                if self.echo is not None:
                    self.echo(channel_name, post)
            return posts
        await self.drain()
        return posts

    async def post_now(self, channel_name: str, item_ids: list[int] | None = None) -> list[Post]:
        """An admin's /postnow: plan (the given items, or the next due ones) and send at once."""
        posts = await asyncio.to_thread(
            delivery.plan_slot, self.db, channel_name, self.render, item_ids=item_ids, dry_run=self.dry_run,
        )
        if not self.dry_run:
            await self.drain()
        elif self.echo is not None:
            for post in posts:
                self.echo(channel_name, post)
        return posts

    def _draft_commentary(self, channel_name: str) -> None:
        """Let the commentator plugin fill in commentary for the slot's items before they are formatted."""
        assert self.commentator is not None
        with self.db.session() as session:
            channel = get_channel(session, channel_name)
            ids = [item.id for item in delivery.due_items(session, channel)]
        fill_missing_commentary(self.db, self.commentator, ids)

    # -- sending -----------------------------------------------------------------------------

    def _channel_map(self) -> dict[int, Channel]:
        with self.db.session() as session:
            self._channels = {c.id: c for c in all_channels(session)}
        return self._channels

    async def drain(self, *, until: datetime | None = None) -> PublishStats:
        """Send every post that is due now; returns when none is left that may go now."""
        if self.dry_run:
            return self.stats
        await asyncio.to_thread(delivery.expire_leases, self.db)
        self._channel_map()
        in_flight: set[int] = set()
        lock = asyncio.Lock()

        async def worker() -> None:
            while True:
                await self._wait_for_hold()
                async with lock:
                    post = await self._claim(in_flight)
                    if post is None:
                        return
                    in_flight.add(post.channel_id)
                    chat_id = self._channels[post.channel_id].chat_id  # the window _claim counted it in
                try:
                    await self._send(post)
                finally:
                    in_flight.discard(post.channel_id)
                    self.limiter.done(chat_id)

        await asyncio.gather(*(worker() for _ in range(max(1, self.concurrency))))
        return self.stats

    async def _wait_for_hold(self) -> None:
        while self.hold_until is not None:
            delay = (self.hold_until - utcnow()).total_seconds()
            if delay <= 0:
                self.hold_until = None
                break
            await asyncio.sleep(delay)

    async def _claim(self, in_flight: set[int]) -> Post | None:
        """The next post whose chat has room in its window, claimed, then let through the windows.

        The windows count a send from when they let it through until a window after its answer, so
        that moment is right before the request: let through before the claim (a transaction of
        variable length), sends were counted longer than needed. The chat's window already had room
        (peek), so the wait here is the global window's: under a second, with at most
        ``concurrency`` posts held in sending, the same bound on what a crash leaves uncertain.
        """
        while True:
            blocked = [cid for cid, ch in self._channels.items()
                       if cid in in_flight or self.limiter.chat_wait(ch.chat_id) > 0]
            candidates = await asyncio.to_thread(delivery.peek_next, self.db, exclude_channels=blocked)
            if candidates is None:
                return None
            post_id, channel_id = candidates
            channel = self._channels.get(channel_id) or self._channel_map().get(channel_id)
            if channel is None:
                return None
            claimed = await asyncio.to_thread(
                delivery.claim_next, self.db, self.worker,
                lease=timedelta(seconds=self.config.publish.lease_seconds), channel_ids=[channel_id],
            )
            if claimed:
                await self.limiter.acquire(channel.chat_id)
                return claimed[0]
            # another worker took it between the peek and the claim: look again

    async def _send(self, post: Post) -> None:
        channel = self._channels[post.channel_id]
        settings = settings_of(channel)
        chat = chat_ref(channel.chat_id)
        assert self.bot is not None
        try:
            with metrics.time_send(channel.name):
                message = await self._request(chat, post, settings, plain=False)
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            metrics.flood_held(wait)
            self.hold_until = utcnow() + timedelta(seconds=wait)
            self.stats.flood_waits += 1
            await asyncio.to_thread(delivery.bump_counter, self.db, "flood_waits")
            await asyncio.to_thread(delivery.record_retry, self.db, post.id, self.worker,
                                    f"flood control: retry after {wait:g}s", self.hold_until,
                                    count_attempt=False)
            log.warning("429 from Telegram: holding every send for %gs (post %s kept)", wait, post.id)
            return
        except Forbidden as exc:
            await self._pause(channel, post, f"the bot cannot post in {channel.chat_id}: {exc.message}")
            return
        except BadRequest as exc:
            text = exc.message.lower()
            if "can't parse entities" in text or "can't find end" in text or "unsupported start tag" in text:
                log.error("post %s: Telegram could not parse its HTML (%s); resending as plain text",
                          post.id, exc.message)
                try:
                    message = await self._request(chat, post, settings, plain=True)
                except TelegramError as again:
                    await self._fail(post, f"plain-text resend failed: {again}")
                    return
                self.stats.plain_fallbacks += 1
                await self._sent(post, message.message_id, plain=True, note=f"sent as plain text: {exc.message}")
                return
            if "chat not found" in text or "not enough rights" in text or "chat_write_forbidden" in text:
                await self._pause(channel, post, f"{channel.chat_id}: {exc.message}")
                return
            await self._fail(post, exc.message)
            return
        except (TimedOut, NetworkError) as exc:
            await self._network_error(post, exc)
            return
        except TelegramError as exc:
            await self._fail(post, str(exc))
            return
        await self._sent(post, message.message_id)

    async def _request(self, chat: int | str, post: Post, settings: Any, *, plain: bool) -> Any:
        assert self.bot is not None
        text = html_to_plain(post.html) if plain else post.html
        parse_mode = None if plain else "HTML"
        if post.photo:
            try:
                return await self.bot.send_photo(chat, post.photo, caption=text, parse_mode=parse_mode,
                                                 disable_notification=settings.silent)
            except BadRequest as exc:
                if not _photo_problem(exc.message):
                    raise
                log.warning("post %s: photo %s refused (%s); sending the text alone", post.id, post.photo,
                            exc.message)
        return await self.bot.send_message(
            chat, text, parse_mode=parse_mode, disable_notification=settings.silent,
            link_preview_options=LinkPreviewOptions(is_disabled=not settings.link_preview),
        )

    async def _sent(self, post: Post, message_id: int, *, plain: bool = False, note: str | None = None) -> None:
        await asyncio.to_thread(delivery.record_sent, self.db, post.id, self.worker, message_id,
                                plain_fallback=plain, error=note)
        self.stats.sent += 1

    async def _fail(self, post: Post, error: str) -> None:
        await asyncio.to_thread(delivery.record_failed, self.db, post.id, self.worker, error)
        self.stats.failed += 1
        self.stats.errors.append(error)
        await self._tell_admins(f"Post {post.id} failed and was not sent: {error}\n/uncertain lists it.")

    async def _pause(self, channel: Channel, post: Post, reason: str) -> None:
        await asyncio.to_thread(delivery.release, self.db, post.id, self.worker, reason)
        await asyncio.to_thread(self._pause_channel, channel.name, reason)
        channel.paused = True
        log.error("channel %s paused: %s", channel.name, reason)
        await self._tell_admins(f"Channel {channel.name} is paused: {reason}\nFix it, then /resume {channel.name}.")

    def _pause_channel(self, name: str, reason: str) -> None:
        with self.db.session() as session:
            set_paused(session, name, True, actor="publisher", reason=reason)

    async def _network_error(self, post: Post, exc: TelegramError) -> None:
        cause = exc.__cause__
        maybe_sent = cause is not None and not isinstance(cause, _NOT_SENT)
        if maybe_sent:
            error = f"outcome unknown: {exc}"
            await asyncio.to_thread(delivery.record_uncertain, self.db, post.id, self.worker, error)
            self.stats.uncertain += 1
            await self._tell_admins(f"Post {post.id} may or may not have been sent ({exc}). "
                                    "It will not be resent without your word: /uncertain")
            return
        if post.attempts >= self.config.publish.max_attempts:
            await self._fail(post, f"gave up after {post.attempts} attempts: {exc}")
            return
        delay = min(self.config.publish.backoff_seconds * 2 ** (post.attempts - 1),
                    self.config.publish.backoff_max_seconds)
        await asyncio.to_thread(delivery.record_retry, self.db, post.id, self.worker, f"{exc}",
                                utcnow() + timedelta(seconds=delay))
        self.stats.retried += 1

    async def _tell_admins(self, text: str) -> None:
        if self.notify is not None:
            try:
                await self.notify(text)
            except Exception:  # telling admins must never break publishing
                log.exception("could not notify the admins")


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _photo_problem(message: str) -> bool:
    text = message.lower()
    return any(s in text for s in ("wrong file identifier", "failed to get http url content",
                                   "wrong type of the web page content", "photo_invalid_dimensions",
                                   "image_process_failed", "wrong remote file"))
