"""The due-items cursor: a channel's next items, read forward from its low-water mark.

Everything before the mark is delivered or excluded by the channel's rules, so a selection
reads from there, plus whatever was stored since the last selection (an old article ingested
late sorts before the mark); its cost does not grow with the archive or the channel's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from digests.channels import settings_hash, settings_of
from digests.config import ChannelConfig
from digests.publishing.selection import is_eligible, next_due_items, order_key
from digests.store import posts
from digests.store.db import Session
from digests.store.models import Channel, Item
from digests.store.posts import Candidate

_SCAN_BATCH = 200
_SCAN_LIMIT = 20_000  # rows one selection may read past before it gives up for this slot
_INGEST_MARGIN = timedelta(minutes=10)

Position = tuple[datetime, int]  # (sort_at, id): where an item stands in the channel's order


@dataclass(slots=True)
class DueSelection:
    """A channel's next items, and its cursor once they are planned."""

    items: list[Item]
    cursor: dict[str, Any]


def due_items(session: Session, channel: Channel, *, limit: int | None = None, now: datetime | None = None,
              advance_cursor: bool = False, narrow: bool = True) -> list[Item]:
    """The channel's next items, in its order, never one already delivered to it.

    ``advance_cursor`` moves the channel's mark past them (planning does, a preview does not);
    it needs ``now``, the moment of this selection.
    """
    selection = select_due(session, channel, limit=limit, narrow=narrow)
    if advance_cursor:
        if now is None:
            raise ValueError("advancing the cursor needs now")
        advance_cursor_to(channel, selection.cursor, now)
    return selection.items


def advance_cursor_to(channel: Channel, cursor: dict[str, Any], at: datetime) -> None:
    """Keep the cursor a selection made at ``at`` leaves, once its items are planned."""
    channel.selection_cursor = cursor
    channel.selected_at = at


def _narrowing(settings: ChannelConfig) -> dict[str, list[str]] | None:
    """The item columns whose values the channel's rules name, for the query to match."""
    rules = settings.select
    only = {column: list(values) for column, values in
            (("source", rules.sources), ("category", rules.categories), ("format", rules.formats)) if values}
    return only or None


def select_due(session: Session, channel: Channel, *, limit: int | None = None, narrow: bool = True) -> DueSelection:
    """The channel's next items and the cursor that follows them; nothing is changed.

    ``narrow``: the query reads only items of the channel's sources, categories and formats (rows
    the rules would reject anyway, so the items chosen are the same; the mark may stop at an
    earlier row, which every later read skips by the same rule). False reads every undelivered
    row, as selection did before (the reference planner and its benchmark).
    """
    settings = settings_of(channel)
    limit = limit or settings.per_slot
    order = settings.select.order
    newest = order == "newest"
    cursor = channel.selection_cursor or {}
    if cursor.get("rules") != settings_hash(settings):
        cursor = {}
    mark: Position | None = None
    if order != "shuffle" and cursor.get("at") is not None:
        mark = (datetime.fromisoformat(cursor["at"]), int(cursor["id"]))

    only = _narrowing(settings) if narrow else None
    admitted = settings.model_copy(update={"commentary_policy": "publish"})  # the rules alone

    def waits(item: Candidate) -> bool:
        """The rules admit it but this selection does not take it (held for commentary, or past the limit)."""
        return is_eligible(item, admitted, has_commentary=True, backlog_from=channel.backlog_from)

    shuffle = order == "shuffle"
    chosen: list[Candidate] = []
    seen: set[int] = set()
    trail: list[tuple[Candidate, bool]] = []  # every row read, in order, and whether this selection picked it
    scanned = 0
    last: Position | None = None
    # Read little when little is wanted (a row costs more to load than to skip); more each round.
    batch_size = _SCAN_BATCH if shuffle else min(_SCAN_BATCH, 2 * limit + 8)
    while scanned < _SCAN_LIMIT and (shuffle or len(chosen) < limit):  # a shuffle draws from everything due
        batch = posts.undelivered_in_order(session, channel.id, newest_first=newest, limit=batch_size,
                                           mark=mark, after=last, only=only)
        if not batch:
            break
        scanned += len(batch)
        picked = next_due_items(
            batch, settings, delivered=set(), with_commentary=posts.commented_ids(session, [i.id for i in batch]),
            backlog_from=channel.backlog_from, limit=limit if shuffle else limit - len(chosen),
        )
        last = (batch[-1].sort_at, batch[-1].id)
        batch_size = min(_SCAN_BATCH, batch_size * 2)
        if shuffle:  # the first `limit` in the shuffled order so far, not every row read
            chosen = sorted([*chosen, *picked], key=lambda item: order_key(item, settings))[:limit]
            continue
        picked_ids = {item.id for item in picked}
        trail.extend((item, item.id in picked_ids) for item in batch)
        for item in picked:
            if item.id not in seen:
                chosen.append(item)
                seen.add(item.id)

    # Items stored since the last selection may sort before the cursor (an old article ingested late).
    back_to: Position | None = None  # the cursor must move back to keep late items in view
    reset = False
    if channel.selected_at is not None and mark is not None:
        # The margin covers an ingest that stamped its items before the last selection but
        # committed them after it.
        new_ids = posts.item_ids_created_since(session, channel.selected_at - _INGEST_MARGIN, limit=_SCAN_LIMIT)
        reset = len(new_ids) >= _SCAN_LIMIT  # too many to follow: read the channel's order afresh next time
        recent = posts.undelivered_up_to(session, channel.id, new_ids, newest_first=newest, mark=mark)
        recent.sort(key=lambda item: order_key(item, settings))
        late = next_due_items(recent, settings, delivered=set(),
                              with_commentary=posts.commented_ids(session, [item.id for item in recent]),
                              backlog_from=channel.backlog_from, limit=limit)
        merged = {item.id: item for item in [*late, *chosen]}
        chosen = sorted(merged.values(), key=lambda item: order_key(item, settings))[:limit]
        taken = {item.id for item in chosen}
        first_left = next((item for item in recent if item.id not in taken and waits(item)), None)
        if first_left is not None:  # just before it in the channel's order (the mark is exclusive)
            back_to = (first_left.sort_at, first_left.id + (1 if newest else -1))

    new_cursor = dict(cursor, rules=settings_hash(settings))
    if order != "shuffle":
        # The mark passes what the rules exclude and what this selection takes, up to the first
        # item that stays due; an item picked above but cut by the late ones is not passed.
        taken = {item.id for item in chosen}
        low_water: Position | None = None
        for item, picked_here in trail:
            if item.id not in taken and (picked_here or waits(item)):
                break
            low_water = (item.sort_at, item.id)
        if reset:
            new_cursor.pop("at", None)
            new_cursor.pop("id", None)
        elif back_to is not None:
            new_cursor.update(at=back_to[0].isoformat(), id=back_to[1])
        elif low_water is not None:
            new_cursor.update(at=low_water[0].isoformat(), id=low_water[1])
    return DueSelection(posts.items_in_order(session, [item.id for item in chosen]), new_cursor)
