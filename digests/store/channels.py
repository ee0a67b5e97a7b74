"""Channel rows: synced from config.yaml, read, paused and rescheduled by admins, kept across restarts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digests.channels import changed_settings, merged_from_file, schedule_change
from digests.clock import utcnow
from digests.config import ChannelConfig, Config
from digests.errors import NotFoundError
from digests.store.audit import audit
from digests.store.models import Channel


def sync_channels(session: Session, config: Config, *, now: datetime | None = None) -> list[Channel]:
    """Create or update channels from config.yaml (see digests.channels.merged_from_file)."""
    now = now or utcnow()
    channels = []
    for conf in config.channels:
        from_file = conf.model_dump(mode="json")
        channel = session.scalar(select(Channel).where(Channel.name == conf.name))
        if channel is None:
            channel = Channel(
                name=conf.name, chat_id=str(conf.chat_id), settings=from_file, config_snapshot=from_file,
                created_at=now, updated_at=now,
                backlog_from=now if conf.backlog == "now" else None,
            )
            session.add(channel)
        else:
            settings = merged_from_file(channel.settings, channel.config_snapshot or {}, from_file)
            if settings is not None:
                channel.settings = settings
                channel.chat_id = str(settings["chat_id"])
                channel.updated_at = now
            channel.config_snapshot = from_file
        channels.append(channel)
    session.flush()
    return channels


def all_channels(session: Session) -> list[Channel]:
    return list(session.scalars(select(Channel).order_by(Channel.name)))


def get_channel(session: Session, name: str, *, lock: bool = False) -> Channel:
    stmt = select(Channel).where(Channel.name == name)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    channel = session.scalar(stmt)
    if channel is None:
        known = ", ".join(c.name for c in all_channels(session)) or "none configured"
        raise NotFoundError(f"no channel {name!r} (channels: {known})")
    return channel


def _update_settings(session: Session, channel: Channel, changes: dict[str, Any], *, actor: str,
                     action: str, now: datetime | None = None) -> ChannelConfig:
    settings = changed_settings(channel.settings, changes)
    before = {k: channel.settings.get(k) for k in changes}
    channel.settings = settings.model_dump(mode="json")
    channel.updated_at = now or utcnow()
    audit(session, actor, action, f"channel:{channel.name}", {"before": before, "after": changes}, now=now)
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
    audit(session, actor, "pause" if paused else "resume", f"channel:{name}", {"reason": reason}, now=now)
    session.flush()
    return channel
