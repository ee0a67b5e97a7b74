"""Planning a slot: a channel's due items grouped and rendered into posts, committed before any is sent.

A slot is selected once. The publisher may select it ahead (select_slot) so that the
commentator drafts commentary for exactly those items, then plans that selection; planning
takes it as it is unless the channel changed meanwhile (another worker planned, an admin
changed its rules), and then selects afresh under the channel's lock.

Planning is batched: the slots of many channels that fire together are planned in one
transaction (plan_slots), with one query for what every check needs (the channels and their
locks, the slots already planned, the items still due, their views), every post rendered with
its channel's formatter compiled once per process, and the posts and their deliveries inserted
as one multi-row statement each. plan_slot is the same for one channel. The per-post planner it
replaced is kept in planning_per_post.py as the reference the tests hold this one to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digests.channels import settings_of
from digests.clock import utcnow
from digests.errors import NotFoundError
from digests.formatting.render import Renderer
from digests.publishing.due import advance_cursor_to, due_items, select_due
from digests.publishing.selection import group_for_posts
from digests.states import DRY_RUN, PENDING
from digests.store import posts
from digests.store.channels import get_channel, get_channels
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


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """One channel's slot to plan: at ``slot_at`` (None: outside any slot), from ``selection`` if made."""

    channel: str
    slot_at: datetime | None = None
    selection: SlotSelection | None = None


def _takes_slot(session: Session, channel: Channel, *, slot_at: datetime | None, dry_run: bool,
                items_named: bool = False) -> bool:
    """The one check before planning: a retired or paused channel plans no slot, and no slot is planned twice.

    ``items_named``: an admin named the items (/postnow ITEM...); the pause does not hold them back.
    """
    if not _may_plan(channel, items_named=items_named):
        return False
    return slot_at is None or dry_run or not posts.slot_planned(session, channel.id, slot_at)


def _may_plan(channel: Channel, *, items_named: bool = False) -> bool:
    """_takes_slot's rules of the channel itself (what makes a slot planned twice is asked of the store)."""
    if channel.retired_at is not None:
        log.info("slot of %s not planned: the channel is retired (%s)", channel.name, channel.retired_reason)
        return False
    if channel.paused and not items_named:
        log.info("slot of %s not planned: the channel is paused", channel.name)
        return False
    return True


def select_slot(db: Database, channel_name: str, *, now: datetime, slot_at: datetime | None = None,
                dry_run: bool = False, limit: int | None = None) -> SlotSelection | None:
    """The items the slot would take now, nothing changed; None when the channel takes no slot now."""
    with db.session() as session:
        channel = get_channel(session, channel_name)
        if not _takes_slot(session, channel, slot_at=slot_at, dry_run=dry_run):
            return None
        due = select_due(session, channel, limit=limit)
        return SlotSelection([item.id for item in due.items], due.cursor, now, _seen(channel))


def select_slots(db: Database, requests: Sequence[SlotRequest], *, now: datetime, dry_run: bool = False
                 ) -> tuple[dict[str, SlotSelection | None], dict[str, NotFoundError]]:
    """select_slot for many channels in one session: each one's selection, and the names of no channel."""
    selections: dict[str, SlotSelection | None] = {}
    missing: dict[str, NotFoundError] = {}
    with db.session() as session:
        found = get_channels(session, [request.channel for request in requests])
        taken = posts.planned_slots(session, [(found[r.channel].id, r.slot_at) for r in requests
                                              if r.channel in found and r.slot_at is not None and not dry_run])
        for request in requests:
            channel = found.get(request.channel)
            if channel is None:
                try:
                    get_channel(session, request.channel)  # the message that names the known channels
                except NotFoundError as exc:
                    missing[request.channel] = exc
                continue
            if not _may_plan(channel) or (channel.id, request.slot_at) in taken:
                selections[request.channel] = None
                continue
            due = select_due(session, channel)
            selections[request.channel] = SlotSelection([item.id for item in due.items], due.cursor, now,
                                                        _seen(channel))
    return selections, missing


def _still_due(session: Session, channel: Channel, selection: SlotSelection) -> list[Item] | None:
    """The selection's items read again, or None when the channel changed since it was made."""
    return _all_still_due(session, [(channel, selection)])[0]


def _all_still_due(session: Session, chosen: Sequence[tuple[Channel, SlotSelection]]) -> list[list[Item] | None]:
    """_still_due for many channels: their items read in one query, their deliveries in another."""
    fresh = [(channel, selection) for channel, selection in chosen if _seen(channel) == selection.seen]
    found = {item.id: item for item in posts.live_items(
        session, sorted({item_id for _, selection in fresh for item_id in selection.item_ids}))}
    done = {channel_id for channel_id, _ in posts.delivered_pairs(
        session, [(channel.id, item_id) for channel, selection in fresh for item_id in selection.item_ids])}
    still: list[list[Item] | None] = []
    for channel, selection in chosen:
        if (_seen(channel) != selection.seen or channel.id in done
                or any(item_id not in found for item_id in selection.item_ids)):
            still.append(None)
        else:
            still.append([found[item_id] for item_id in selection.item_ids])
    return still


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
            if item_ids is not None:
                if not _takes_slot(session, channel, slot_at=slot_at, dry_run=dry_run, items_named=True):
                    return []
                wanted = posts.live_items(session, item_ids)
                done = posts.delivered_ids(session, channel.id, [i.id for i in wanted])
                chosen = [i for i in wanted if i.id not in done]
                return _store(session, [(channel, SlotRequest(channel_name, slot_at), chosen)], render,
                              now=now, dry_run=dry_run)[channel_name]
            request = SlotRequest(channel_name, slot_at, selection)
            return _plan(session, [(channel, request)], render, now=now, dry_run=dry_run, limit=limit)[channel_name]
    except posts.AlreadyDelivered:
        # Another worker delivered one of these items to the channel meanwhile: plan nothing now.
        return []


def plan_slots(db: Database, requests: Sequence[SlotRequest], render: Renderer, *, now: datetime | None = None,
               dry_run: bool = False) -> dict[str, list[Post]]:
    """plan_slot for the slots of many channels at once, in one transaction: the posts of each by name.

    A channel of no such name plans nothing (it left meanwhile). Should another worker have
    delivered one of the items meanwhile, the batch is planned again channel by channel, so that
    only that channel's slot plans nothing.
    """
    now = now or utcnow()
    if len({request.channel for request in requests}) < len(requests):
        raise ValueError("one slot a channel in a batch")
    try:
        with posts.planning(db) as session:
            channels = get_channels(session, [request.channel for request in requests], lock=True)
            for request in requests:
                if request.channel not in channels:
                    log.warning("slot of %s not planned: no such channel", request.channel)
            found = [(channels[request.channel], request) for request in requests if request.channel in channels]
            found.sort(key=lambda pair: pair[0].id)
            planned = _plan(session, found, render, now=now, dry_run=dry_run)
    except posts.AlreadyDelivered:
        planned = {request.channel: plan_slot(db, request.channel, render, now=now, slot_at=request.slot_at,
                                              dry_run=dry_run, selection=request.selection)
                   for request in requests}
    return {request.channel: planned.get(request.channel, []) for request in requests}


def _plan(session: Session, requests: Sequence[tuple[Channel, SlotRequest]], render: Renderer, *,
          now: datetime, dry_run: bool, limit: int | None = None) -> dict[str, list[Post]]:
    """The checks and the selection of each channel's slot, then the posts of all of them."""
    taken = posts.planned_slots(session, [(channel.id, request.slot_at) for channel, request in requests
                                          if request.slot_at is not None and not dry_run])
    open_slots = [(channel, request) for channel, request in requests
                  if _may_plan(channel) and (channel.id, request.slot_at) not in taken]
    selected = [(channel, request) for channel, request in open_slots if request.selection is not None]
    chosen: dict[int, list[Item] | None] = {
        channel.id: items for (channel, _), items in zip(
            selected, _all_still_due(session, [(c, r.selection) for c, r in selected if r.selection is not None]),
            strict=True)}
    slots: list[tuple[Channel, SlotRequest, list[Item]]] = []
    for channel, request in open_slots:
        items = chosen.get(channel.id)
        if items is not None and request.selection is not None:
            if not dry_run:
                advance_cursor_to(channel, request.selection.cursor, request.selection.at)
        else:
            items = due_items(session, channel, limit=limit, now=now, advance_cursor=not dry_run)
        slots.append((channel, request, items))
    return {request.channel: [] for _, request in requests} | _store(session, slots, render, now=now, dry_run=dry_run)


def _store(session: Session, slots: Sequence[tuple[Channel, SlotRequest, list[Item]]], render: Renderer, *,
           now: datetime, dry_run: bool) -> dict[str, list[Post]]:
    """Render each slot's groups and insert every post, then every delivery: one statement each."""
    views = {view.id: view for view in item_views(session, [item for _, _, items in slots for item in items])}
    rows: list[dict[str, Any]] = []
    owners: list[str] = []
    for channel, request, items in slots:
        settings = settings_of(channel)
        for group in group_for_posts(items, settings):
            number = None
            if settings.mode == "digest":
                number = channel.digest_counter + 1
                if not dry_run:
                    channel.digest_counter = number
            rendered_posts = render([views[item.id] for item in group], settings, number)
            for part, rendered in enumerate(rendered_posts, start=1):
                rows.append({
                    "channel_id": channel.id, "state": DRY_RUN if dry_run else PENDING, "mode": settings.mode,
                    "html": rendered.html, "photo": rendered.photo, "item_ids": list(rendered.item_ids),
                    "part": part, "digest_number": number, "slot_at": request.slot_at, "created_at": now,
                    "updated_at": now, "sent_at": now if dry_run else None,
                })
                owners.append(request.channel)
    planned: dict[str, list[Post]] = {request.channel: [] for _, request, _ in slots}
    if not rows:
        return planned
    stored = posts.add_posts(session, rows)
    if not dry_run:
        posts.add_deliveries_of(session, stored, now=now)
    for name, post in zip(owners, stored, strict=True):
        planned[name].append(post)
    return planned
