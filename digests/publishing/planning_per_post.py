"""The per-post planner as it was before batching: the reference the batched planner is held to.

Kept callable, and nothing in the bot uses it: tests/test_planning_batch.py compares what both
store, and bench/publish.py times both in the same run. It reads a group's views, inserts each
post and its deliveries one at a time, and selects without narrowing the query by the channel's
sources, categories and formats (``narrow=False``), exactly as planning did then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digests.channels import settings_of
from digests.clock import utcnow
from digests.formatting.render import Renderer
from digests.publishing.due import advance_cursor_to, due_items
from digests.publishing.planning import SlotSelection, _still_due, _takes_slot
from digests.publishing.selection import group_for_posts
from digests.states import DRY_RUN, PENDING
from digests.store import posts
from digests.store.channels import get_channel
from digests.store.db import Database
from digests.store.items import item_views
from digests.store.models import Post


def plan_slot_per_post(db: Database, channel_name: str, render: Renderer, *, now: datetime | None = None,
                       slot_at: datetime | None = None, dry_run: bool = False,
                       item_ids: Sequence[int] | None = None, limit: int | None = None,
                       selection: SlotSelection | None = None) -> list[Post]:
    """plan_slot as it was: one channel, a query per group's views, a flush per post."""
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
                items = due_items(session, channel, limit=limit, now=now, advance_cursor=not dry_run, narrow=False)
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
        return []
