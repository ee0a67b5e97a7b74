"""Planning a slot: a channel's due items grouped and rendered into posts, committed before any is sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digests.channels import get_channel, settings_of
from digests.clock import utcnow
from digests.formatting.render import Renderer
from digests.publishing.due import due_items
from digests.publishing.selection import group_for_posts
from digests.queries import item_views
from digests.states import DRY_RUN, PENDING
from digests.store import posts
from digests.store.db import Database
from digests.store.models import Post


def plan_slot(db: Database, channel_name: str, render: Renderer, *, now: datetime | None = None,
              slot_at: datetime | None = None, dry_run: bool = False, item_ids: Sequence[int] | None = None,
              limit: int | None = None) -> list[Post]:
    """Create the posts of one slot (pending, or dry-run); [] when paused or nothing is due.

    ``slot_at`` makes planning idempotent: a slot that already has posts is not planned again
    (two workers firing the same slot, or a restart inside a slot). ``item_ids`` plans exactly
    those items (an admin's /postnow), still never one already delivered to the channel.
    """
    now = now or utcnow()
    try:
        with posts.planning(db) as session:
            channel = get_channel(session, channel_name, lock=True)
            if channel.paused and item_ids is None:
                return []
            if slot_at is not None and not dry_run and posts.slot_planned(session, channel.id, slot_at):
                return []
            settings = settings_of(channel)
            if item_ids is not None:
                wanted = posts.live_items(session, item_ids)
                done = posts.delivered_ids(session, channel.id, [i.id for i in wanted])
                items = [i for i in wanted if i.id not in done]
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
