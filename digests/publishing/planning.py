"""Planning a slot: a channel's due items grouped and rendered into posts, committed before any is sent.

A slot is selected once. The publisher may select it ahead (select_slot) so that the
commentator drafts commentary for exactly those items, then plans that selection; planning
takes it as it is unless the channel changed meanwhile (another worker planned, an admin
changed its rules), and then selects afresh under the channel's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digests.channels import settings_of
from digests.clock import utcnow
from digests.formatting.render import Renderer
from digests.publishing.due import advance_cursor_to, due_items, select_due
from digests.publishing.selection import group_for_posts
from digests.states import DRY_RUN, PENDING
from digests.store import posts
from digests.store.channels import get_channel
from digests.store.db import Database, Session
from digests.store.items import item_views
from digests.store.models import Channel, Item, Post

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SlotSelection:
    """A slot's items chosen ahead of planning, with the cursor they leave and what they were chosen from."""

    item_ids: list[int]
    cursor: dict[str, Any]
    at: datetime  # when the selection was made: the channel's selected_at once it is planned
    seen: tuple[Any, ...]  # the channel's cursor, selected_at and settings as the selection found them


def _seen(channel: Channel) -> tuple[Any, ...]:
    return (channel.selection_cursor, channel.selected_at, channel.settings)


def _takes_slot(session: Session, channel: Channel, *, slot_at: datetime | None, dry_run: bool,
                items_named: bool = False) -> bool:
    """The one check before planning: a retired or paused channel plans no slot, and no slot is planned twice.

    ``items_named``: an admin named the items (/postnow ITEM...); the pause does not hold them back.
    """
    if channel.retired_at is not None:
        log.info("slot of %s not planned: the channel is retired (%s)", channel.name, channel.retired_reason)
        return False
    if channel.paused and not items_named:
        log.info("slot of %s not planned: the channel is paused", channel.name)
        return False
    return slot_at is None or dry_run or not posts.slot_planned(session, channel.id, slot_at)


def select_slot(db: Database, channel_name: str, *, now: datetime, slot_at: datetime | None = None,
                dry_run: bool = False, limit: int | None = None) -> SlotSelection | None:
    """The items the slot would take now, nothing changed; None when the channel takes no slot now."""
    with db.session() as session:
        channel = get_channel(session, channel_name)
        if not _takes_slot(session, channel, slot_at=slot_at, dry_run=dry_run):
            return None
        due = select_due(session, channel, limit=limit)
        return SlotSelection([item.id for item in due.items], due.cursor, now, _seen(channel))


def _still_due(session: Session, channel: Channel, selection: SlotSelection) -> list[Item] | None:
    """The selection's items read again, or None when the channel changed since it was made."""
    if _seen(channel) != selection.seen:
        return None
    found = {item.id: item for item in posts.live_items(session, selection.item_ids)}
    if len(found) < len(selection.item_ids) or posts.delivered_ids(session, channel.id, selection.item_ids):
        return None
    return [found[item_id] for item_id in selection.item_ids]


def plan_slot(db: Database, channel_name: str, render: Renderer, *, now: datetime | None = None,
              slot_at: datetime | None = None, dry_run: bool = False, item_ids: Sequence[int] | None = None,
              limit: int | None = None, selection: SlotSelection | None = None) -> list[Post]:
    """Create the posts of one slot (pending, or dry-run); [] when paused or nothing is due.

    ``slot_at`` makes planning idempotent: a slot that already has posts is not planned again
    (two workers firing the same slot, or a restart inside a slot). ``item_ids`` plans exactly
    those items (an admin's /postnow, paused or not), still never one already delivered to the
    channel. ``selection`` is the slot as select_slot chose it.
    """
    now = now or utcnow()
    try:
        with posts.planning(db) as session:
            channel = get_channel(session, channel_name, lock=True)
            if not _takes_slot(session, channel, slot_at=slot_at, dry_run=dry_run, items_named=item_ids is not None):
                return []
            settings = settings_of(channel)
            if item_ids is not None:
                wanted = posts.live_items(session, item_ids)
                done = posts.delivered_ids(session, channel.id, [i.id for i in wanted])
                items = [i for i in wanted if i.id not in done]
            elif selection is not None and (chosen := _still_due(session, channel, selection)) is not None:
                items = chosen
                if not dry_run:
                    advance_cursor_to(channel, selection.cursor, selection.at)
            else:
                items = due_items(session, channel, limit=limit, now=now, advance_cursor=not dry_run)
            if not items:
                return []
            planned: list[Post] = []
            for group in group_for_posts(items, settings):
                number = None
                if settings.mode == "digest":
                    number = channel.digest_counter + 1
                    if not dry_run:
                        channel.digest_counter = number
                views = item_views(session, list(group))
                for part, rendered in enumerate(render(views, settings, number), start=1):
                    post = posts.add_post(
                        session, channel.id, state=DRY_RUN if dry_run else PENDING, mode=settings.mode,
                        html=rendered.html, photo=rendered.photo, item_ids=list(rendered.item_ids), part=part,
                        digest_number=number, slot_at=slot_at, created_at=now, updated_at=now,
                        sent_at=now if dry_run else None,
                    )
                    if not dry_run:
                        posts.add_deliveries(session, post, rendered.item_ids, now=now)
                    planned.append(post)
            return planned
    except posts.AlreadyDelivered:
        # Another worker delivered one of these items to the channel meanwhile: plan nothing now.
        return []
