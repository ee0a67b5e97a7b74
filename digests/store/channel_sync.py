"""config.yaml's channels into their rows, matched by chat; retiring and restoring channels.

A row is a chat (digests.chats): a channel renamed in config.yaml is the same row under a new
name, with its deliveries, digest numbers, cursor, pause and admin overrides; a row whose chat
left config.yaml retires (it never posts again, its history stays) and comes back where it
stopped when its chat returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digests.channels import merged_from_file
from digests.chats import chat_key, is_numeric, is_username, shared_chat_errors
from digests.clock import utcnow
from digests.config import ChannelConfig, Config
from digests.errors import ConfigError
from digests.store.audit import audit
from digests.store.models import Channel

CONFIG = "config"  # retired_by of a channel that left config.yaml: putting it back restores it


def _identity(conf: ChannelConfig, resolved: Mapping[str, str], rows: list[Channel]) -> str:
    """The chat key of a configured channel; an @username Telegram did not resolve now keeps the id it had."""
    key = chat_key(conf.chat_id, resolved)
    if is_username(conf.chat_id) and not is_numeric(key):
        remembered = [row.chat_key for row in rows
                      if row.chat_id.lower() == key and row.chat_key and is_numeric(row.chat_key)]
        if remembered:
            return remembered[-1]
    return key


def sync_channels(session: Session, config: Config, *, resolved: Mapping[str, str] | None = None,
                  retire_missing: bool = False, now: datetime | None = None) -> list[Channel]:
    """Create, rename or update the rows of config.yaml's channels; the active ones, in config order.

    ``resolved`` maps lower-case @usernames to the numeric chat ids Telegram gave (getChat).
    ``retire_missing``: rows whose chat is not in config.yaml retire (the deployment's own
    config does this; a preview with another file must not); a row whose name config.yaml
    gives another chat retires in any case. ConfigError, and nothing changed, when two
    configured channels turn out to be one chat.
    """
    now = now or utcnow()
    resolved = resolved or {}
    rows = list(session.scalars(select(Channel).order_by(Channel.id)))
    keys = [_identity(conf, resolved, rows) for conf in config.channels]
    errors = shared_chat_errors([(conf.name, conf.chat_id) for conf in config.channels], keys)
    if errors:
        raise ConfigError("config.yaml: two channels post to one chat\n  " + "\n  ".join(errors))
    by_key = {row.chat_key: row for row in rows if row.chat_key}
    matched: set[int] = set()
    active = []
    for conf, key in zip(config.channels, keys, strict=True):
        channel = by_key.get(key)
        as_configured = chat_key(conf.chat_id)
        if channel is None and as_configured != key and as_configured in by_key:
            # Known by its @username until now (a dry run): Telegram has said which chat it is.
            channel = by_key.pop(as_configured)
            channel.chat_key = key
            by_key[key] = channel
        if channel is None:
            channel = _create(session, conf, key, now)
        else:
            _update(session, channel, conf, now)
        matched.add(channel.id)
        if channel.retired_at is None:
            active.append(channel)
    names = {conf.name: str(conf.chat_id) for conf in config.channels}
    for row in rows:
        if row.id in matched or row.retired_at is not None:
            continue
        if row.name in names:  # one active channel per name, always: the name is config.yaml's other chat now
            retire(session, row, by=CONFIG, reason=f"config.yaml gives its name to chat {names[row.name]}", now=now)
        elif retire_missing:
            retire(session, row, by=CONFIG, reason="not in config.yaml", now=now)
    session.flush()
    return active


def _create(session: Session, conf: ChannelConfig, key: str, now: datetime) -> Channel:
    from_file = conf.model_dump(mode="json")
    channel = Channel(
        name=conf.name, chat_id=str(conf.chat_id), chat_key=key, settings=from_file, config_snapshot=from_file,
        created_at=now, updated_at=now, backlog_from=now if conf.backlog == "now" else None,
    )
    session.add(channel)
    session.flush()
    return channel


def _update(session: Session, channel: Channel, conf: ChannelConfig, now: datetime) -> None:
    """The operator's edits to config.yaml applied over the admins' (digests.channels.merged_from_file)."""
    from_file = conf.model_dump(mode="json")
    if channel.name != conf.name:
        audit(session, CONFIG, "rename", f"channel:{conf.name}", {"before": channel.name, "after": conf.name},
              now=now, channel_id=channel.id)
        channel.name = conf.name
    settings = merged_from_file(channel.settings, channel.config_snapshot or {}, from_file)
    if settings is not None:
        channel.settings = settings
        channel.chat_id = str(settings["chat_id"])
        channel.updated_at = now
    channel.config_snapshot = from_file
    if channel.retired_at is not None and channel.retired_by == CONFIG:
        restore(session, channel, actor=CONFIG, now=now)


def retire(session: Session, channel: Channel, *, by: str, reason: str, now: datetime | None = None) -> None:
    """The channel posts nothing from now on; its posts, deliveries and settings stay."""
    now = now or utcnow()
    channel.retired_at, channel.retired_by, channel.retired_reason = now, by, reason
    channel.updated_at = now
    audit(session, by, "retire", f"channel:{channel.name}", {"reason": reason}, now=now, channel_id=channel.id)


def restore(session: Session, channel: Channel, *, actor: str, now: datetime | None = None) -> None:
    """A retired channel posts again, from where it stopped."""
    now = now or utcnow()
    audit(session, actor, "restore", f"channel:{channel.name}",
          {"retired_at": channel.retired_at.isoformat() if channel.retired_at else None,
           "reason": channel.retired_reason}, now=now, channel_id=channel.id)
    channel.retired_at = channel.retired_by = channel.retired_reason = None
    channel.updated_at = now
