"""Changes the bot's admins and the CLI make, each in its own transaction on the Database.

The read side is digests/views.py; the rows and their SQL are in digests/store/.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from digests.config import ChannelConfig, Config
from digests.store import audit as store_audit
from digests.store import channels as store_channels
from digests.store import items as store_items
from digests.store import prefs as store_prefs
from digests.store import search
from digests.store.db import Database


def sync_from_config(db: Database, config: Config, *, only: str | None = None) -> list[str]:
    """config.yaml's channels into the database, then the names of the channels to work on.

    Every stored channel, or only `only`: NotFoundError names the channels when there is no such
    one, and then nothing is synced.
    """
    with db.session() as session:
        store_channels.sync_channels(session, config)
        names = [channel.name for channel in store_channels.all_channels(session)]
        if only is not None:
            store_channels.get_channel(session, only)
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


def add_commentary(db: Database, item_id: int, text: str, *, author: str) -> None:
    """An editor's commentary, shown by the item's next post; NotFoundError or ValueError (empty text)."""
    with db.session() as session:
        store_items.add_commentary(session, item_id, text, author=author)


def audit(db: Database, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
    """Record an admin action that changed nothing else here (a /postnow, an /ingest)."""
    with db.session() as session:
        store_audit.audit(session, actor, action, target, detail)


def rebuild_search_index(db: Database) -> int:
    """The search index built afresh from the stored items; how many were indexed."""
    with db.session() as session:
        return search.rebuild_index(session)


def set_user_language(db: Database, user_id: int, language: str | None) -> None:
    """A Telegram user's /lang choice; None forgets it (their Telegram language applies again)."""
    with db.session() as session:
        store_prefs.set_user_language(session, user_id, language)
