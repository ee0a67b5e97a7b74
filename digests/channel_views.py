"""What `digestbot channels` shows: each channel's state and why, its next slot, queue and last post; its audit log.

Read models like digests/views.py, each one read transaction; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from digests.channels import settings_of
from digests.publishing.slots import upcoming_slot
from digests.states import FAILED, UNCERTAIN, WAITING_STATES
from digests.store.audit import channel_entries
from digests.store.channels import all_channels, get_channel
from digests.store.db import Database
from digests.store.post_reads import last_sent_posts
from digests.store.posts import queue_counts

ACTIVE, PAUSED, RETIRED = "active", "paused", "retired"


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    name: str
    chat_id: str  # as configured
    chat_key: str | None  # the identity its history belongs to (the numeric id once resolved)
    state: str  # active | paused | retired
    reason: str | None  # why it is paused or retired
    since: datetime | None  # when it was retired
    timezone: str
    schedule: list[str]
    next_slot: datetime | None  # None when it posts nothing (paused or retired)
    queue: int  # posts planned and waiting to be sent
    needs_word: int  # uncertain or failed posts waiting for an operator
    last_post_at: datetime | None
    last_message_id: int | None

    def as_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {"name": self.name, "chat_id": self.chat_id, "chat_key": self.chat_key, "state": self.state,
                "reason": self.reason, "retired_at": iso(self.since), "timezone": self.timezone,
                "schedule": self.schedule, "next_slot": iso(self.next_slot), "queue": self.queue,
                "uncertain_or_failed": self.needs_word, "last_post_at": iso(self.last_post_at),
                "last_message_id": self.last_message_id}


@dataclass(frozen=True, slots=True)
class ChannelLogEntry:
    at: datetime
    actor: str
    action: str
    target: str  # the channel's name when it was done
    detail: dict[str, Any]


def channel_statuses(db: Database, *, now: datetime) -> list[ChannelStatus]:
    """Every channel row: the active and paused ones first, then the retired (newest retirement first)."""
    statuses = []
    with db.session() as session:
        counts, last = queue_counts(session), last_sent_posts(session)
        for channel in all_channels(session):
            settings = settings_of(channel)
            if channel.retired_at is not None:
                state, reason = RETIRED, channel.retired_reason
            elif channel.paused:
                state, reason = PAUSED, channel.paused_reason
            else:
                state, reason = ACTIVE, None
            upcoming = upcoming_slot(settings.schedule, now, settings.timezone) if state == ACTIVE else None
            if upcoming is not None:
                upcoming = upcoming.astimezone(ZoneInfo(settings.timezone))  # shown in the channel's time
            post = last.get(channel.id)
            statuses.append(ChannelStatus(
                name=channel.name, chat_id=channel.chat_id, chat_key=channel.chat_key, state=state, reason=reason,
                since=channel.retired_at, timezone=settings.timezone, schedule=list(settings.schedule),
                next_slot=upcoming, queue=sum(counts.get((channel.id, s), 0) for s in WAITING_STATES),
                needs_word=counts.get((channel.id, UNCERTAIN), 0) + counts.get((channel.id, FAILED), 0),
                last_post_at=post.sent_at if post is not None else None,
                last_message_id=post.message_id if post is not None else None,
            ))
    return statuses


def channel_log(db: Database, name: str) -> tuple[str, list[ChannelLogEntry]]:
    """The channel's timezone and its audit log, oldest first, under every name it had; NotFoundError names the channels."""
    with db.session() as session:
        channel = get_channel(session, name)
        entries = [ChannelLogEntry(e.at, e.actor, e.action, e.target, dict(e.detail))
                   for e in channel_entries(session, channel.id)]
        return settings_of(channel).timezone, entries
