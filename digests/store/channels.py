"""Channel rows: read, paused and rescheduled by admins, kept across restarts (synced in channel_sync.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digests.channels import changed_settings, schedule_change
from digests.clock import utcnow
from digests.config import ChannelConfig
from digests.errors import NotFoundError
from digests.store.audit import audit
from digests.store.models import Channel


def all_channels(session: Session) -> list[Channel]:
    """Every channel row, the active ones first, retired ones after (newest retirement first)."""
    return list(session.scalars(select(Channel).order_by(Channel.retired_at.is_not(None), Channel.name,
                                                         Channel.retired_at.desc(), Channel.id)))


def active_channels(session: Session) -> list[Channel]:
    """The channels that post: those in config.yaml that no one retired."""
    return list(session.scalars(select(Channel).where(Channel.retired_at.is_(None)).order_by(Channel.name)))


def active_channel(session: Session, name: str) -> Channel | None:
    """The active channel of that name, if any (one indexed read; active_channels reads them all)."""
    return session.scalar(select(Channel).where(Channel.name == name, Channel.retired_at.is_(None))
                          .order_by(Channel.id).limit(1))


def get_channel(session: Session, name: str, *, lock: bool = False) -> Channel:
    """The channel of that name: the active one, else the one retired last under it."""
    stmt = (select(Channel).where(Channel.name == name)
            .order_by(Channel.retired_at.is_not(None), Channel.retired_at.desc(), Channel.id.desc()).limit(1))
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    channel = session.scalar(stmt)
    if channel is None:
        known = tuple(c.name for c in active_channels(session))
        raise NotFoundError(f"no channel {name!r} (channels: {', '.join(known) or 'none configured'})",
                            what="channel", name=name, known=known)
    return channel


def get_channels(session: Session, names: Sequence[str], *, lock: bool = False) -> dict[str, Channel]:
    """Each named channel as get_channel finds it, in one query; a name with no channel is left out.

    ``lock`` (PostgreSQL) locks every row of those names in id order, so that two workers locking
    overlapping sets wait for each other instead of deadlocking.
    """
    if not names:
        return {}
    stmt = select(Channel).where(Channel.name.in_(sorted(set(names)))).order_by(Channel.id)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    found: dict[str, Channel] = {}
    for channel in session.scalars(stmt):
        current = found.get(channel.name)
        if current is None or _preference(channel) > _preference(current):
            found[channel.name] = channel
    return found


def _preference(channel: Channel) -> tuple[bool, float, int]:
    """get_channel's order: the active row, else the one retired last (then the newest row)."""
    retired = channel.retired_at
    return (retired is None, retired.timestamp() if retired is not None else 0.0, channel.id)


def _update_settings(session: Session, channel: Channel, changes: dict[str, Any], *, actor: str,
                     action: str, now: datetime | None = None) -> ChannelConfig:
    settings = changed_settings(channel.settings, changes)
    before = {k: channel.settings.get(k) for k in changes}
    channel.settings = settings.model_dump(mode="json")
    channel.updated_at = now or utcnow()
    audit(session, actor, action, f"channel:{channel.name}", {"before": before, "after": changes}, now=now,
          channel_id=channel.id)
    session.flush()
    return settings


def set_schedule(session: Session, name: str, entries: list[str], *, actor: str,
                 now: datetime | None = None) -> ChannelConfig:
    """Replace a channel's schedule; ValueError explains a bad cron expression with an example."""
    channel = get_channel(session, name)
    change = schedule_change(channel.settings, entries)
    return _update_settings(session, channel, change, actor=actor, action="schedule", now=now)


def set_paused(session: Session, name: str, paused: bool, *, actor: str, reason: str | None = None,
               now: datetime | None = None) -> Channel:
    channel = get_channel(session, name)
    channel.paused = paused
    channel.paused_reason = reason if paused else None
    channel.updated_at = now or utcnow()
    audit(session, actor, "pause" if paused else "resume", f"channel:{name}", {"reason": reason}, now=now,
          channel_id=channel.id)
    session.flush()
    return channel
