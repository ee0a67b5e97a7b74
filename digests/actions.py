"""Changes the bot's admins and the CLI make, each in its own transaction on the Database.

The read side is digests/views.py; the rows and their SQL are in digests/store/.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digests.channels import settings_of
from digests.config import ChannelConfig, Config
from digests.errors import DigestError
from digests.store import audit as store_audit
from digests.store import channel_sync, post_reads, search
from digests.store import channels as store_channels
from digests.store import items as store_items
from digests.store import prefs as store_prefs
from digests.store.db import Database


def sync_from_config(db: Database, config: Config, *, only: str | None = None,
                     resolved: Mapping[str, str] | None = None, retire_missing: bool = False) -> list[str]:
    """config.yaml's channels into the database, then the names of the active ones to work on.

    Every active configured channel, or only `only`: NotFoundError names the channels when there
    is no such one and DigestError says why a retired one posts nothing; then nothing is synced.
    ``resolved`` and ``retire_missing`` as digests.store.channel_sync.sync_channels takes them.
    """
    with db.session() as session:
        active = channel_sync.sync_channels(session, config, resolved=resolved, retire_missing=retire_missing)
        names = [channel.name for channel in active]
        if only is not None:
            channel = store_channels.get_channel(session, only)
            if channel.retired_at is not None:
                raise DigestError(f"channel {only!r} is retired ({channel.retired_reason}): it posts nothing")
            return [only]
    return names


def set_schedule(db: Database, name: str, entries: Sequence[str], *, actor: str) -> ChannelConfig:
    """Replace a channel's schedule (audited); ValueError explains a bad entry, NotFoundError a bad name."""
    with db.session() as session:
        return store_channels.set_schedule(session, name, list(entries), actor=actor)


def set_paused(db: Database, name: str, paused: bool, *, actor: str, reason: str | None = None) -> None:
    """Pause or resume a channel (audited); NotFoundError names the channels."""
    with db.session() as session:
        store_channels.set_paused(session, name, paused, actor=actor, reason=reason)


def retire_channel(db: Database, name: str, *, actor: str) -> bool:
    """Retire a channel by hand (audited): it posts nothing until resumed; False when it already was retired."""
    with db.session() as session:
        channel = store_channels.get_channel(session, name)
        if channel.retired_at is not None:
            return False
        channel_sync.retire(session, channel, by=actor, reason=f"retired by {actor}")
        return True


def resume_channel(db: Database, name: str, *, actor: str, in_config: bool) -> list[str]:
    """Post to a paused channel (a 403 too) or one retired by hand again (audited); what was undone.

    DigestError for a channel retired because config.yaml no longer has it (``in_config``
    says whether it has it now): putting it back there resumes it.
    """
    undone = []
    with db.session() as session:
        channel = store_channels.get_channel(session, name)
        if channel.retired_at is not None:
            if channel.retired_by in (channel_sync.CONFIG, "migration") or not in_config:
                raise DigestError(f"channel {name!r} is retired ({channel.retired_reason}): put it back in "
                                  "config.yaml and it resumes where it stopped at the next publish or start")
            channel_sync.restore(session, channel, actor=actor)
            undone.append("retired")
        if channel.paused:
            undone.append(f"paused ({channel.paused_reason})")
            store_channels.set_paused(session, name, False, actor=actor)
    return undone


@dataclass(frozen=True, slots=True)
class CommentaryReach:
    """Where a new commentary shows: the channels whose sent message of the item is edited, and those that keep it."""

    edited: list[str] = field(default_factory=list)  # on_change: edit -- the next drain edits the message
    kept: list[str] = field(default_factory=list)  # on_change: ignore -- the message stays as sent


def add_commentary(db: Database, item_id: int, text: str, *, author: str) -> CommentaryReach:
    """An editor's commentary, shown by the item's next post and edited into the messages already sent.

    NotFoundError or ValueError (empty text).
    """
    reach = CommentaryReach()
    with db.session() as session:
        store_items.add_commentary(session, item_id, text, author=author)
        for name in sorted({name for _, name, _, _ in post_reads.sent_posts_of_items(session, [item_id])}):
            settings = settings_of(store_channels.get_channel(session, name))
            (reach.edited if settings.on_change == "edit" else reach.kept).append(name)
    return reach


def audit(db: Database, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None, *,
          channel: str | None = None) -> None:
    """Record an admin action that changed nothing else here (a /postnow, an /ingest), in `channel`'s log if given."""
    with db.session() as session:
        channel_id = store_channels.get_channel(session, channel).id if channel is not None else None
        store_audit.audit(session, actor, action, target, detail, channel_id=channel_id)


def rebuild_search_index(db: Database) -> int:
    """The search index built afresh from the stored items; how many were indexed."""
    with db.session() as session:
        return search.rebuild_index(session)


def set_user_language(db: Database, user_id: int, language: str | None) -> None:
    """A Telegram user's /lang choice; None forgets it (their Telegram language applies again)."""
    with db.session() as session:
        store_prefs.set_user_language(session, user_id, language)
