"""Channels in the database: synced from config.yaml, changed by admins, kept across restarts."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from digests.config import ChannelConfig, Config, validate_schedule_entry
from digests.errors import NotFoundError
from digests.queries import audit
from digests.store.models import Channel, utcnow


def settings_of(channel: Channel) -> ChannelConfig:
    """The channel's effective settings (the database copy)."""
    return ChannelConfig.model_validate(channel.settings)


def settings_hash(settings: ChannelConfig) -> str:
    """A digest of the rules that decide which items a channel may take (cursor validity)."""
    relevant = settings.model_dump(mode="json", include={"select", "commentary_policy", "backlog"})
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def sync_channels(session: Session, config: Config, *, now: datetime | None = None) -> list[Channel]:
    """Create or update channels from config.yaml.

    The database copy is what runs: a key an admin changed through the bot keeps the admin's
    value until the operator edits that key in config.yaml (we compare with the snapshot of the
    file taken at the last sync).
    """
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
            snapshot = channel.config_snapshot or {}
            settings = dict(channel.settings)
            changed = False
            for key, value in from_file.items():
                if snapshot.get(key) != value:  # the operator changed this key in the file
                    settings[key] = value
                    changed = True
            if changed:
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
    merged = {**channel.settings, **changes}
    try:
        settings = ChannelConfig.model_validate(merged)
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
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
    timezone = channel.settings.get("timezone", "Asia/Shanghai")
    cleaned = [validate_schedule_entry(entry, timezone) for entry in entries]
    return _update_settings(session, channel, {"schedule": cleaned}, actor=actor, action="schedule", now=now)


def set_paused(session: Session, name: str, paused: bool, *, actor: str, reason: str | None = None,
               now: datetime | None = None) -> Channel:
    channel = get_channel(session, name)
    channel.paused = paused
    channel.paused_reason = reason if paused else None
    channel.updated_at = now or utcnow()
    audit(session, actor, "pause" if paused else "resume", f"channel:{name}", {"reason": reason}, now=now)
    session.flush()
    return channel
