"""Edits and deletions of sent messages: claim one from the outbox, make it, record what happened.

The publisher's drain runs this after its sends, with the publisher's rate limiter and flood
hold: an edit is a request to the chat like a send, and a 429 on it holds every request. The
rules (which method, what follows an answer) are digests.publishing.edits'.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from telegram import Bot, InputMediaPhoto, LinkPreviewOptions
from telegram.error import TelegramError

from bot.config import BotConfig as Config
from bot.i18n import Notice
from bot.ratelimit import SendLimiter
from bot.telegram_errors import outcome_of
from digests.channels import settings_of
from digests.clock import utcnow
from digests.config import ChannelConfig
from digests.errors import DigestError
from digests.formatting.render import Renderer
from digests.formatting.telegram_html import visible_text
from digests.publishing.corrections import queue_corrections
from digests.publishing.edits import (
    Done,
    EditDecision,
    EditMethod,
    Gone,
    TooLate,
    can_delete,
    decide_edit,
    edit_method,
    photo_after,
)
from digests.publishing.retry import Fail, Kind, Outcome, PauseChannel, Policy, ResendPlain, RetryAt
from digests.states import EDIT_FAILED, EDIT_NOT_FOUND, EDIT_TOO_LATE
from digests.store import edits as outbox
from digests.store import posts
from digests.store.channels import all_channels, set_paused
from digests.store.db import Database

log = logging.getLogger(__name__)


class Host(Protocol):
    """What the edit sender shares with the publisher that runs it."""

    db: Database
    config: Config
    bot: Bot | None
    policy: Policy
    limiter: SendLimiter
    worker: str
    concurrency: int
    hold_until: datetime | None  # after a 429 nothing is sent before this
    notify: Callable[[Notice], Awaitable[None]] | None
    render: Renderer
    stats: Any  # bot.publisher.PublishStats: edited, deleted, failed, flood_waits, errors


@dataclass(frozen=True, slots=True)
class _Channel:
    id: int
    name: str
    chat_id: str
    settings: ChannelConfig


def _chat_ref(chat_id: str) -> int | str:
    return int(chat_id) if re.fullmatch(r"-?\d+", chat_id) else chat_id


class EditSender:
    """Queues the corrections of sent posts and makes the queued edits, recording every outcome."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._channels: dict[int, _Channel] = {}

    async def queue_corrections(self) -> None:
        """Queue edits for sent posts whose items changed since the last look."""
        try:
            report = await asyncio.to_thread(queue_corrections, self.host.db, self.host.render)
        except DigestError as exc:
            log.error("looking for changed posts failed: %s", exc)
            return
        for problem in report.problems:
            await self._tell_admins(problem)

    async def drain(self) -> None:
        """Make every edit that may go now; returns when none is left that may."""
        await asyncio.to_thread(outbox.expire_edit_leases, self.host.db)
        self._channel_map()
        in_flight: set[int] = set()
        lock = asyncio.Lock()

        async def worker() -> None:
            while True:
                await self._wait_for_hold()
                async with lock:
                    job = await self._claim(in_flight)
                    if job is None:
                        return
                    in_flight.add(job.channel_id)
                    chat_id = self._channels[job.channel_id].chat_id
                try:
                    await self._perform(job)
                finally:
                    in_flight.discard(job.channel_id)
                    await self.host.limiter.done(chat_id)

        await asyncio.gather(*(worker() for _ in range(max(1, self.host.concurrency))))

    def _channel_map(self) -> dict[int, _Channel]:
        with self.host.db.session() as session:
            self._channels = {c.id: _Channel(c.id, c.name, c.chat_id, settings_of(c)) for c in all_channels(session)}
        return self._channels

    async def _wait_for_hold(self) -> None:
        while self.host.hold_until is not None:
            delay = (self.host.hold_until - utcnow()).total_seconds()
            if delay <= 0:
                self.host.hold_until = None
                break
            await asyncio.sleep(delay)

    async def _claim(self, in_flight: set[int]) -> outbox.EditJob | None:
        """The next edit whose chat has room in its window, let through the windows, then claimed (as a post)."""
        limiter = self.host.limiter
        while True:
            blocked = [cid for cid, ch in self._channels.items()
                       if cid in in_flight or limiter.chat_wait(ch.chat_id) > 0]
            candidate = await asyncio.to_thread(outbox.peek_next_edit, self.host.db, exclude_channels=blocked)
            if candidate is None:
                return None
            edit_id, channel_id = candidate
            channel = self._channels.get(channel_id) or self._channel_map().get(channel_id)
            if channel is None:
                return None
            if not await limiter.try_acquire(channel.chat_id):
                continue  # its window filled up meanwhile (another worker): the peek skips it now
            job = await asyncio.to_thread(outbox.claim_edit, self.host.db, edit_id, self.host.worker,
                                          lease=timedelta(seconds=self.host.config.publish.lease_seconds))
            if job is not None:
                return job
            await limiter.cancel(channel.chat_id)
            # another worker took it between the peek and the claim: look again

    # -- one edit ------------------------------------------------------------------------------

    async def _perform(self, job: outbox.EditJob) -> None:
        channel = self._channels[job.channel_id]
        if job.action == "delete":
            await self._delete(job, channel)
            return
        method = edit_method(job.shown_photo, job.photo)
        try:
            await self._request(channel, job, method, plain=False)
        except TelegramError as exc:
            outcome = outcome_of(exc, channel.chat_id)
        else:
            await self._done(job, method, None)
            return
        if outcome.kind is Kind.OTHER_CONTENT:
            # The message is not what its record says (a photo Telegram refused went as text alone).
            method = EditMethod.CAPTION if method is EditMethod.TEXT else EditMethod.TEXT
            try:
                await self._request(channel, job, method, plain=False)
            except TelegramError as again:
                outcome = outcome_of(again, channel.chat_id)
            else:
                await self._done(job, method, None)
                return
        decision = decide_edit(outcome, job.attempts, self.host.policy, utcnow())
        if isinstance(decision, ResendPlain):
            log.error("edit %s of post %s: Telegram could not parse its HTML (%s); editing as plain text",
                      job.id, job.post_id, outcome.detail)
            try:
                await self._request(channel, job, method, plain=True)
            except TelegramError as again:
                outcome = outcome_of(again, channel.chat_id)
                decision = decide_edit(outcome, job.attempts, self.host.policy, utcnow(), plain_resend=True)
            else:
                await self._done(job, method, decision.note)
                return
        await self._act(job, channel, outcome, decision, method)

    async def _delete(self, job: outbox.EditJob, channel: _Channel) -> None:
        if not can_delete(job.sent_at, utcnow()):
            await self._act(job, channel, Outcome(Kind.TOO_LATE, "more than 48 hours since it was sent"),
                            TooLate("Telegram deletes messages only within 48 hours of sending: the message stays"),
                            None)
            return
        assert self.host.bot is not None
        try:
            await self.host.bot.delete_message(_chat_ref(channel.chat_id), job.message_id)
        except TelegramError as exc:
            outcome = outcome_of(exc, channel.chat_id)
        else:
            await asyncio.to_thread(outbox.record_edit_done, self.host.db, job, self.host.worker, html=None,
                                    photo=None)
            self.host.stats.deleted += 1
            return
        await self._act(job, channel, outcome, decide_edit(outcome, job.attempts, self.host.policy, utcnow()), None)

    async def _request(self, channel: _Channel, job: outbox.EditJob, method: EditMethod, *, plain: bool) -> Any:
        bot = self.host.bot
        assert bot is not None and job.html is not None
        chat = _chat_ref(channel.chat_id)
        text = visible_text(job.html) if plain else job.html
        parse_mode = None if plain else "HTML"
        if method is EditMethod.TEXT:
            preview = LinkPreviewOptions(is_disabled=not channel.settings.link_preview)
            return await bot.edit_message_text(text, chat_id=chat, message_id=job.message_id, parse_mode=parse_mode,
                                               link_preview_options=preview)
        if method is EditMethod.CAPTION:
            return await bot.edit_message_caption(chat_id=chat, message_id=job.message_id, caption=text,
                                                  parse_mode=parse_mode)
        assert job.photo is not None
        media = InputMediaPhoto(job.photo, caption=text, parse_mode=parse_mode)
        return await bot.edit_message_media(media, chat_id=chat, message_id=job.message_id)

    async def _done(self, job: outbox.EditJob, method: EditMethod, note: str | None) -> None:
        await asyncio.to_thread(outbox.record_edit_done, self.host.db, job, self.host.worker, html=job.html,
                                photo=photo_after(method, job.shown_photo, job.photo), note=note)
        self.host.stats.edited += 1

    async def _act(self, job: outbox.EditJob, channel: _Channel, outcome: Outcome, decision: EditDecision,
                   method: EditMethod | None) -> None:
        """Record what the decider said and tell whoever needs to know."""
        db, worker = self.host.db, self.host.worker
        what = "deletion" if job.action == "delete" else "edit"
        if isinstance(decision, Done):
            if method is None:  # a deletion Telegram no longer needed: the message was gone
                await asyncio.to_thread(outbox.record_edit_done, db, job, worker, html=None, photo=None,
                                        note=decision.note)
            else:
                await self._done(job, method, decision.note)
        elif isinstance(decision, RetryAt):
            if decision.hold_all:
                self.host.hold_until = decision.at
            if outcome.kind is Kind.FLOOD_WAIT:
                self.host.stats.flood_waits += 1
                await asyncio.to_thread(posts.bump_counter, db, "flood_waits")
                log.warning("429 from Telegram on an %s: holding every request for %gs", what, outcome.retry_after)
            await asyncio.to_thread(outbox.record_edit_retry, db, job.id, worker, decision.reason, decision.at,
                                    count_attempt=decision.counts_attempt)
        elif isinstance(decision, Gone) and job.action == "delete":  # gone already: what was asked
            await asyncio.to_thread(outbox.record_edit_done, db, job, worker, html=None, photo=None,
                                    note=decision.reason)
        elif isinstance(decision, Gone):
            await asyncio.to_thread(outbox.record_edit_end, db, job, worker, EDIT_NOT_FOUND, decision.reason)
            await self._tell_admins(f"Post {job.post_id} in {channel.name} was corrected, but its message is "
                                    f"gone ({outcome.detail}): the {what} was not made. "
                                    "`digestbot deliveries` shows it.")
        elif isinstance(decision, TooLate):
            await asyncio.to_thread(outbox.record_edit_end, db, job, worker, EDIT_TOO_LATE, decision.reason)
        elif isinstance(decision, PauseChannel):
            await asyncio.to_thread(outbox.release_edit, db, job.id, worker, decision.reason)
            await asyncio.to_thread(self._pause_channel, channel.name, decision.reason)
            log.error("channel %s paused: %s", channel.name, decision.reason)
            await self._tell_admins(f"Channel {channel.name} is paused: {decision.reason}\n"
                                    f"Fix it, then /resume {channel.name}.")
        elif isinstance(decision, Fail):
            await asyncio.to_thread(outbox.record_edit_end, db, job, worker, EDIT_FAILED, decision.reason)
            self.host.stats.edits_failed += 1
            self.host.stats.errors.append(decision.reason)
            await self._tell_admins(f"The {what} of post {job.post_id} in {channel.name} failed: {decision.reason}")
        else:  # a plain-text edit is decided once, in _perform
            raise AssertionError(f"unexpected decision {decision!r}")

    def _pause_channel(self, name: str, reason: str) -> None:
        with self.host.db.session() as session:
            set_paused(session, name, True, actor="publisher", reason=reason)

    async def _tell_admins(self, text: str) -> None:
        if self.host.notify is not None:
            try:
                await self.host.notify(lambda _t: text)  # English in every language, for now
            except Exception:  # telling admins must never break publishing
                log.exception("could not notify the admins")
