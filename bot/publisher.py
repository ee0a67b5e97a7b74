"""The only code that sends posts to Telegram: claim a post, send it, record what happened."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from telegram import Bot, LinkPreviewOptions
from telegram.error import BadRequest, TelegramError

from bot import metrics
from bot.config import BotConfig as Config
from bot.edit_sender import EditSender
from bot.i18n import Notice
from bot.ratelimit import SendLimiter, SharedSendLimiter, bot_key
from bot.reply_limiter import publisher_request
from bot.telegram_errors import outcome_of, photo_refused
from digests.channels import settings_of
from digests.clock import utcnow
from digests.config import ChannelConfig
from digests.formatting.render import make_renderer
from digests.formatting.telegram_html import visible_text
from digests.publishing.commentator import fill_missing_commentary, make_commentator
from digests.publishing.planning import SlotRequest, plan_slot, plan_slots, select_slots
from digests.publishing.retry import (
    Decision,
    Fail,
    Kind,
    Outcome,
    PauseChannel,
    Policy,
    ResendPlain,
    RetryAt,
    Uncertain,
    decide,
)
from digests.store import posts
from digests.store.channels import all_channels, set_paused
from digests.store.db import Database

log = logging.getLogger(__name__)


class OutgoingPost(Protocol):
    """What the publisher reads of a post the store handed it (the stored row stays opaque here)."""

    @property
    def id(self) -> int: ...
    @property
    def channel_id(self) -> int: ...
    @property
    def html(self) -> str: ...
    @property
    def photo(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def item_ids(self) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class _Target:
    """A channel as the sender needs it: where its posts go and how."""

    id: int
    name: str
    chat_id: str
    settings: ChannelConfig


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
    edited: int = 0
    deleted: int = 0
    edits_failed: int = 0
    errors: list[str] = field(default_factory=list)


PLAN_BATCH = 500  # slots planned in one transaction


@dataclass(slots=True)
class _Fired:
    """A slot that fired, waiting for its batch to be planned."""

    channel: str
    slot_at: datetime | None
    now: datetime | None
    result: asyncio.Future[Sequence[Any]]


Notifier = Callable[[Notice], Awaitable[None]]
Echo = Callable[[str, Any], None]  # (channel name, a post planned in dry run)


def send_limiter(db: Database, config: Config, bot: Bot | None) -> SendLimiter:
    """The send windows of the bot: shared through the database with every other worker of it.

    Always shared, whatever the backend: any number of processes may run on one database (`run`
    beside a `publish --once`, several `run` on PostgreSQL), and Telegram counts them together.
    A dry run sends nothing and counts in memory.
    """
    limits = config.limits
    if bot is None:
        return SendLimiter(limits.global_per_second, limits.channel_per_minute)
    # How long a request can take at most (pool, connect, write, read), after which an unfinished
    # reservation is a dead worker's and stops counting, a window later.
    in_flight_for = 4 * config.telegram.request_timeout + 10
    return SharedSendLimiter(db, bot_key(bot.token), limits.global_per_second, limits.channel_per_minute,
                             in_flight_for=in_flight_for)


class Publisher:
    """Turns due slots into posts and posts into Telegram messages, recording every outcome."""

    def __init__(self, db: Database, config: Config, bot: Bot | None, *, dry_run: bool = False,
                 notify: Notifier | None = None, echo: Echo | None = None,
                 worker: str | None = None, concurrency: int | None = None) -> None:
        self.db = db
        self.config = config
        self.bot = bot
        self.dry_run = dry_run or bot is None
        self.notify = notify
        self.echo = echo
        self.worker = worker or worker_name()
        self.concurrency = concurrency or config.publish.concurrency
        self.policy = Policy.from_config(config.publish)
        self.limiter = send_limiter(db, config, bot)
        self.render = make_renderer()
        self.commentator = make_commentator(config.commentator)
        self.hold_until: datetime | None = None  # after a 429 nothing is sent before this
        self.stats = PublishStats()
        self._channels: dict[int, _Target] = {}
        self.edits = EditSender(self)  # sent posts that follow their items' corrections
        self._fired: list[_Fired] = []  # slots fired and not planned yet
        self._planner: asyncio.Task[None] | None = None
        self._planned_generation = 0  # batches of slots committed so far
        self._drained_generation = 0  # the newest of them a finished drain began after
        self._drain_task: asyncio.Task[None] | None = None

    # -- planning ----------------------------------------------------------------------------

    async def run_slot(self, channel_name: str, *, slot_at: datetime | None = None,
                       now: datetime | None = None) -> Sequence[OutgoingPost]:
        """Plan one slot of a channel and send what it planned (and anything else due).

        The slot is selected once: the commentator drafts commentary for those items, and
        planning renders the same items with it. Slots that fire together (every channel's job
        at the same minute) are planned together, PLAN_BATCH channels a transaction, and share
        one drain: a slot returns once a drain that began after its posts were committed is done.
        """
        fired = _Fired(channel_name, slot_at, now, asyncio.get_running_loop().create_future())
        self._fired.append(fired)
        if self._planner is None or self._planner.done():
            self._planner = asyncio.create_task(self._plan_fired())
        planned = await fired.result
        if self.dry_run:
            for post in planned:
                if self.echo is not None:
                    self.echo(channel_name, post)
            return planned
        await self._drain_after_plans()
        return planned

    async def _plan_fired(self) -> None:
        """Plan the slots fired so far, a batch at a time, until none is waiting."""
        while self._fired:
            batch: list[_Fired] = []
            later: list[_Fired] = []
            names: set[str] = set()
            for fired in self._fired:  # a channel once a batch; one moment (now) a batch
                if len(batch) >= PLAN_BATCH or fired.channel in names or (batch and fired.now != batch[0].now):
                    later.append(fired)
                else:
                    batch.append(fired)
                    names.add(fired.channel)
            self._fired = later
            try:
                planned, missing = await asyncio.to_thread(self._plan_batch, batch)
            except Exception as exc:  # each slot's caller hears of it
                for fired in batch:
                    fired.result.set_exception(exc)
                continue
            self._planned_generation += 1
            for fired in batch:
                if fired.channel in missing:
                    fired.result.set_exception(missing[fired.channel])
                else:
                    fired.result.set_result(planned.get(fired.channel, []))

    def _plan_batch(self, batch: Sequence[_Fired]) -> tuple[dict[str, list[Any]], dict[str, Exception]]:
        now = batch[0].now or utcnow()
        requests = [SlotRequest(f.channel, f.slot_at) for f in batch]
        selections, missing = select_slots(self.db, requests, now=now, dry_run=self.dry_run)
        chosen = [SlotRequest(r.channel, r.slot_at, selection) for r in requests
                  if (selection := selections.get(r.channel)) is not None]
        if self.commentator is not None and chosen:
            fill_missing_commentary(self.db, self.commentator,
                                    [item_id for r in chosen if r.selection for item_id in r.selection.item_ids])
        planned = plan_slots(self.db, chosen, self.render, now=now, dry_run=self.dry_run) if chosen else {}
        return dict(planned), dict(missing)

    async def _drain_after_plans(self) -> None:
        """Wait for a drain that began after every plan committed so far; start one if none is running."""
        wanted = self._planned_generation
        while self._drained_generation < wanted:
            task = self._drain_task
            if task is None or task.done():
                task = self._drain_task = asyncio.create_task(self._drain_from(self._planned_generation))
            await asyncio.shield(task)

    async def _drain_from(self, generation: int) -> None:
        await self.drain()
        self._drained_generation = max(self._drained_generation, generation)

    async def post_now(self, channel_name: str, item_ids: list[int] | None = None) -> Sequence[OutgoingPost]:
        """An admin's /postnow: plan (the given items, or the next due ones) and send at once."""
        planned = await asyncio.to_thread(
            plan_slot, self.db, channel_name, self.render, item_ids=item_ids, dry_run=self.dry_run,
        )
        if not self.dry_run:
            await self.drain()
        elif self.echo is not None:
            for post in planned:
                self.echo(channel_name, post)
        return planned

    # -- sending -----------------------------------------------------------------------------

    def _channel_map(self) -> dict[int, _Target]:
        with self.db.session() as session:
            self._channels = {c.id: _Target(c.id, c.name, c.chat_id, settings_of(c)) for c in all_channels(session)}
        return self._channels

    async def drain(self, *, until: datetime | None = None) -> PublishStats:
        """Send every post that is due now, then make the edits due; returns when none is left that may go."""
        if self.dry_run:
            return self.stats
        await asyncio.to_thread(posts.expire_leases, self.db)
        self._channel_map()
        await self.edits.queue_corrections()
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
                    await self.limiter.done(chat_id)

        await asyncio.gather(*(worker() for _ in range(max(1, self.concurrency))))
        await self.edits.drain()
        return self.stats

    async def _wait_for_hold(self) -> None:
        while self.hold_until is not None:
            delay = (self.hold_until - utcnow()).total_seconds()
            if delay <= 0:
                self.hold_until = None
                break
            await asyncio.sleep(delay)

    async def _claim(self, in_flight: set[int]) -> OutgoingPost | None:
        """The next post whose chat has room in its window, let through the windows, then claimed.

        The chat's window is taken first: with several workers it can be full although this one
        saw room (another worker's sends), and then the post stays unclaimed and the next
        channel's is tried, rather than holding a claimed post while the window empties. The wait
        here is the global window's: under a second, before the claim, so at most ``concurrency``
        posts are ever held in sending, the same bound on what a crash leaves uncertain. A claim
        lost to another worker gives the room back.
        """
        while True:
            full = self.limiter.full_chats()
            blocked = sorted(in_flight | {cid for cid, ch in self._channels.items() if ch.chat_id in full}
                             if full else in_flight)
            candidates = await asyncio.to_thread(posts.peek_next, self.db, exclude_channels=blocked)
            if candidates is None:
                return None
            post_id, channel_id = candidates
            channel = self._channels.get(channel_id) or self._channel_map().get(channel_id)
            if channel is None:
                return None
            if not await self.limiter.try_acquire(channel.chat_id):
                continue  # its window filled up meanwhile: chat_wait now says so, and the peek skips it
            claimed = await asyncio.to_thread(
                posts.claim_next, self.db, self.worker,
                lease=timedelta(seconds=self.config.publish.lease_seconds), channel_ids=[channel_id],
            )
            if claimed:
                return claimed[0]
            await self.limiter.cancel(channel.chat_id)
            # another worker took it between the peek and the claim: look again

    async def _send(self, post: OutgoingPost) -> None:
        channel = self._channels[post.channel_id]
        settings = channel.settings
        chat = chat_ref(channel.chat_id)
        try:
            with metrics.time_send(channel.name):
                message = await self._request(chat, post, settings, plain=False)
        except TelegramError as exc:
            outcome = outcome_of(exc, channel.chat_id)
        else:
            await self._sent(post, message.message_id)
            return
        decision = decide(outcome, post.attempts, self.policy, utcnow())
        if isinstance(decision, ResendPlain):
            log.error("post %s: Telegram could not parse its HTML (%s); resending as plain text",
                      post.id, outcome.detail)
            try:
                message = await self._request(chat, post, settings, plain=True)
            except TelegramError as again:
                decision = decide(outcome_of(again, channel.chat_id), post.attempts, self.policy, utcnow(),
                                  plain_resend=True)
            else:
                self.stats.plain_fallbacks += 1
                await self._sent(post, message.message_id, plain=True, note=decision.note)
                return
        await self._act(post, channel, outcome, decision)

    async def _act(self, post: OutgoingPost, channel: _Target, outcome: Outcome, decision: Decision) -> None:
        """Record what the decider said and tell whoever needs to know."""
        if isinstance(decision, RetryAt):
            if decision.hold_all:
                self.hold_until = decision.at
            if outcome.kind is Kind.FLOOD_WAIT:
                metrics.flood_held(outcome.retry_after)
                self.stats.flood_waits += 1
                await asyncio.to_thread(posts.bump_counter, self.db, "flood_waits")
            await asyncio.to_thread(posts.record_retry, self.db, post.id, self.worker, decision.reason,
                                    decision.at, count_attempt=decision.counts_attempt)
            if outcome.kind is Kind.FLOOD_WAIT:
                log.warning("429 from Telegram: holding every send for %gs (post %s kept)", outcome.retry_after,
                            post.id)
            else:
                self.stats.retried += 1
        elif isinstance(decision, PauseChannel):
            await self._pause(channel, post, decision.reason)
        elif isinstance(decision, Uncertain):
            await asyncio.to_thread(posts.record_uncertain, self.db, post.id, self.worker, decision.reason)
            self.stats.uncertain += 1
            await self._tell_admins(lambda t: t.gettext(
                "Post {post} may or may not have been sent ({detail}). It will not be resent without your word: "
                "/uncertain").format(post=post.id, detail=outcome.detail))
        elif isinstance(decision, Fail):
            await self._fail(post, decision.reason)
        else:  # a plain-text resend is decided once, in _send
            raise AssertionError(f"unexpected decision {decision!r}")

    @publisher_request  # counted by self.limiter; the bot's rate limiter lets it pass
    async def _request(self, chat: int | str, post: OutgoingPost, settings: ChannelConfig, *, plain: bool) -> Any:
        assert self.bot is not None
        text = visible_text(post.html) if plain else post.html
        parse_mode = None if plain else "HTML"
        if post.photo:
            try:
                return await self.bot.send_photo(chat, post.photo, caption=text, parse_mode=parse_mode,
                                                 disable_notification=settings.silent)
            except BadRequest as exc:
                if not photo_refused(exc):
                    raise
                log.warning("post %s: photo %s refused (%s); sending the text alone", post.id, post.photo,
                            exc.message)
        return await self.bot.send_message(
            chat, text, parse_mode=parse_mode, disable_notification=settings.silent,
            link_preview_options=LinkPreviewOptions(is_disabled=not settings.link_preview),
        )

    async def _sent(self, post: OutgoingPost, message_id: int, *, plain: bool = False, note: str | None = None) -> None:
        await asyncio.to_thread(posts.record_sent, self.db, post.id, self.worker, message_id,
                                plain_fallback=plain, error=note)
        self.stats.sent += 1

    async def _fail(self, post: OutgoingPost, error: str) -> None:
        await asyncio.to_thread(posts.record_failed, self.db, post.id, self.worker, error)
        self.stats.failed += 1
        self.stats.errors.append(error)
        await self._tell_admins(lambda t: t.gettext(
            "Post {post} failed and was not sent: {error}\n/uncertain lists it.").format(post=post.id, error=error))

    async def _pause(self, channel: _Target, post: OutgoingPost, reason: str) -> None:
        await asyncio.to_thread(posts.release, self.db, post.id, self.worker, reason)
        await asyncio.to_thread(self._pause_channel, channel.name, reason)
        log.error("channel %s paused: %s", channel.name, reason)
        await self._tell_admins(lambda t: t.gettext(
            "Channel {channel} is paused: {reason}\nFix it, then /resume {channel}.").format(channel=channel.name,
                                                                                       reason=reason))

    def _pause_channel(self, name: str, reason: str) -> None:
        with self.db.session() as session:
            set_paused(session, name, True, actor="publisher", reason=reason)

    async def _tell_admins(self, notice: Notice) -> None:
        if self.notify is not None:
            try:
                await self.notify(notice)
            except Exception:  # telling admins must never break publishing
                log.exception("could not notify the admins")
