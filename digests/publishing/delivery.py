"""The delivery state machine in the database (DESIGN.md "Delivery state"); no Telegram here.

pending -> sending (claimed under a lease) -> sent(message_id, sent_at)
                                          -> retry(not_before) -> sending ...
                                          -> failed(error, attempts)
                                          -> uncertain (lease expired or outcome unknown)
A post is committed as pending before any request is made, and moved to sending in its own
transaction before the request, so a crash at any point leaves a row that says what happened:
pending (never sent), sending past its lease (maybe sent: uncertain), or sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, Select, exists, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from digests.channels import settings_hash, settings_of
from digests.formatting.render import Renderer
from digests.publishing.selection import group_for_posts, is_eligible, next_due_items, order_key
from digests.store.channels import get_channel
from digests.store.db import Database
from digests.store.items import item_views
from digests.store.models import (
    DRY_RUN,
    FAILED,
    PENDING,
    RETRY,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    Channel,
    Commentary,
    Delivery,
    Item,
    KeyValue,
    Post,
    utcnow,
)

_SCAN_BATCH = 200
_SCAN_LIMIT = 20_000  # rows one selection may read past before it gives up for this slot
_INGEST_MARGIN = timedelta(minutes=10)


# ---------------------------------------------------------------------------------------------
# Selection against the database


def _delivered_ids(session: Session, channel_id: int, item_ids: Sequence[int]) -> set[int]:
    if not item_ids:
        return set()
    return set(session.scalars(
        select(Delivery.item_id).where(Delivery.channel_id == channel_id, Delivery.item_id.in_(item_ids))
    ))


def _commented_ids(session: Session, item_ids: Sequence[int]) -> set[int]:
    if not item_ids:
        return set()
    return set(session.scalars(select(Commentary.item_id).where(Commentary.item_id.in_(item_ids))))


def due_items(session: Session, channel: Channel, *, limit: int | None = None,
              now: datetime | None = None, advance_cursor: bool = False) -> list[Item]:
    """The channel's next items, in its order, never one already delivered to it.

    Reads forward from the channel's low-water mark (everything before it is delivered or
    excluded by the rules), plus whatever was stored since the last selection; so the cost
    does not grow with the archive or the channel's history.
    """
    settings = settings_of(channel)
    limit = limit or settings.per_slot
    order = settings.select.order
    undelivered = ~exists().where(Delivery.channel_id == channel.id, Delivery.item_id == Item.id)
    base = select(Item).where(Item.removed.is_(False), undelivered)
    cursor = channel.selection_cursor or {}
    if cursor.get("rules") != settings_hash(settings):
        cursor = {}
    position = tuple_(Item.sort_at, Item.id)
    sort = (Item.sort_at.desc(), Item.id.desc()) if order == "newest" else (Item.sort_at, Item.id)
    mark: tuple[datetime, int] | None = None
    if order != "shuffle" and cursor.get("at") is not None:
        mark = (datetime.fromisoformat(cursor["at"]), int(cursor["id"]))
        base = base.where(position < mark if order == "newest" else position > mark)

    admitted = settings.model_copy(update={"commentary_policy": "publish"})  # the rules alone

    def waits(item: Item) -> bool:
        """The rules admit it but this selection does not take it (held for commentary, or past the limit)."""
        return is_eligible(item, admitted, has_commentary=True, backlog_from=channel.backlog_from)

    chosen: list[Item] = []
    seen: set[int] = set()
    trail: list[tuple[Item, bool]] = []  # every row read, in order, and whether this selection picked it
    scanned = 0
    last: tuple[datetime, int] | None = None
    want = _SCAN_LIMIT if order == "shuffle" else limit  # a shuffle draws from everything due
    # Read little when little is wanted (a row costs more to load than to skip); more each round.
    batch_size = _SCAN_BATCH if order == "shuffle" else min(_SCAN_BATCH, 2 * limit + 8)
    while len(chosen) < want and scanned < _SCAN_LIMIT:
        stmt = base.order_by(*sort).limit(batch_size)
        if last is not None:
            stmt = stmt.where(position < last if order == "newest" else position > last)
        batch = list(session.scalars(stmt))
        if not batch:
            break
        scanned += len(batch)
        ids = [item.id for item in batch]
        picked = next_due_items(
            batch, settings, delivered=set(), with_commentary=_commented_ids(session, ids),
            backlog_from=channel.backlog_from, limit=want - len(chosen),
        )
        picked_ids = {item.id for item in picked}
        trail.extend((item, item.id in picked_ids) for item in batch)
        for item in picked:
            if item.id not in seen:
                chosen.append(item)
                seen.add(item.id)
        last = (batch[-1].sort_at, batch[-1].id)
        batch_size = min(_SCAN_BATCH, batch_size * 2)
    if order == "shuffle":
        chosen = next_due_items(chosen, settings, delivered=set(), with_commentary=set(),
                                backlog_from=None, limit=limit)

    # Items stored since the last selection may sort before the cursor (an old article ingested late).
    back_to: tuple[datetime, int] | None = None  # the cursor must move back to keep late items in view
    reset = False
    if channel.selected_at is not None and mark is not None:
        # Found by the created_at index alone: the archive and the channel's history are not read.
        # The margin covers an ingest that stamped its items before the last selection but
        # committed them after it.
        since = channel.selected_at - _INGEST_MARGIN
        new_ids = list(session.scalars(select(Item.id).where(Item.created_at >= since)
                                       .order_by(Item.created_at).limit(_SCAN_LIMIT)))
        reset = len(new_ids) >= _SCAN_LIMIT  # too many to follow: read the channel's order afresh next time
        recent: list[Item] = []
        for offset in range(0, len(new_ids), 1000):
            recent.extend(session.scalars(
                select(Item).where(Item.id.in_(new_ids[offset:offset + 1000]), Item.removed.is_(False),
                                   undelivered, position <= mark if order != "newest" else position >= mark)
            ))
        recent.sort(key=lambda item: order_key(item, settings))
        late = next_due_items(recent, settings, delivered=set(),
                              with_commentary=_commented_ids(session, [item.id for item in recent]),
                              backlog_from=channel.backlog_from, limit=limit)
        merged = {item.id: item for item in [*late, *chosen]}
        chosen = sorted(merged.values(), key=lambda item: order_key(item, settings))[:limit]
        taken = {item.id for item in chosen}
        first_left = next((item for item in recent if item.id not in taken and waits(item)), None)
        if first_left is not None:  # just before it in the channel's order (the mark is exclusive)
            back_to = (first_left.sort_at, first_left.id + (1 if order == "newest" else -1))

    if advance_cursor:
        new_cursor = dict(cursor, rules=settings_hash(settings))
        if order != "shuffle":
            # The mark passes what the rules exclude and what this selection takes, up to the first
            # item that stays due; an item picked above but cut by the late ones is not passed.
            taken = {item.id for item in chosen}
            low_water: tuple[datetime, int] | None = None
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
        channel.selection_cursor = new_cursor
        channel.selected_at = now or utcnow()
    return chosen


# ---------------------------------------------------------------------------------------------
# Planning a slot: items -> posts, committed before anything is sent


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
        return _plan_slot(db, channel_name, render, now=now, slot_at=slot_at, dry_run=dry_run,
                          item_ids=item_ids, limit=limit)
    except IntegrityError:
        # Another worker delivered one of these items to the channel meanwhile: plan nothing now.
        return []


def _plan_slot(db: Database, channel_name: str, render: Renderer, *, now: datetime, slot_at: datetime | None,
               dry_run: bool, item_ids: Sequence[int] | None, limit: int | None) -> list[Post]:
    with db.session() as session:
        channel = get_channel(session, channel_name, lock=True)
        if channel.paused and item_ids is None:
            return []
        if slot_at is not None and not dry_run and session.scalar(
            select(Post.id).where(Post.channel_id == channel.id, Post.slot_at == slot_at).limit(1)
        ):
            return []
        settings = settings_of(channel)
        if item_ids is not None:
            wanted = list(session.scalars(select(Item).where(Item.id.in_(item_ids), Item.removed.is_(False))))
            done = _delivered_ids(session, channel.id, [i.id for i in wanted])
            items = [i for i in wanted if i.id not in done]
        else:
            items = due_items(session, channel, limit=limit, now=now, advance_cursor=not dry_run)
        if not items:
            return []
        posts: list[Post] = []
        for group in group_for_posts(items, settings):
            number = None
            if settings.mode == "digest":
                number = channel.digest_counter + 1
                if not dry_run:
                    channel.digest_counter = number
            views = item_views(session, list(group))
            for part, rendered in enumerate(render(views, settings, number), start=1):
                post = Post(
                    channel_id=channel.id, state=DRY_RUN if dry_run else PENDING, mode=settings.mode,
                    html=rendered.html, photo=rendered.photo, item_ids=list(rendered.item_ids), part=part,
                    digest_number=number, slot_at=slot_at, created_at=now, updated_at=now,
                    sent_at=now if dry_run else None,
                )
                session.add(post)
                session.flush()
                if not dry_run:
                    for position, item_id in enumerate(rendered.item_ids):
                        session.add(Delivery(channel_id=channel.id, item_id=item_id, post_id=post.id,
                                             position=position, created_at=now))
                posts.append(post)
        session.flush()
        return posts


# ---------------------------------------------------------------------------------------------
# Claiming and recording


def expire_leases(db: Database, *, now: datetime | None = None) -> int:
    """Posts left in sending past their lease: the outcome is unknown, so they become uncertain."""
    now = now or utcnow()
    with db.session() as session:
        result = session.execute(
            update(Post).where(Post.state == SENDING, Post.lease_until < now)
            .values(state=UNCERTAIN, updated_at=now,
                    error=func.coalesce(Post.error, "the worker stopped while sending (lease expired)"))
        )
        return _rowcount(result)


def _claimable(now: datetime, exclude_channels: Sequence[int] = ()) -> Select[int, int]:
    """(post id, channel id) of posts that may go now, oldest first.

    Posts of a channel go out in order: a post is claimable only when no earlier post of its
    channel is still waiting or in flight, its channel is not paused and its wait is over.
    """
    earlier = aliased(Post)
    blocked_by_earlier = exists().where(
        earlier.channel_id == Post.channel_id, earlier.id < Post.id,
        earlier.state.in_((PENDING, RETRY, SENDING)),
    )
    stmt = (
        select(Post.id, Post.channel_id)
        .join(Channel, Channel.id == Post.channel_id)
        .where(Post.state.in_((PENDING, RETRY)), Channel.paused.is_(False), ~blocked_by_earlier,
               or_(Post.not_before.is_(None), Post.not_before <= now))
        .order_by(Post.id)
    )
    if exclude_channels:
        stmt = stmt.where(Post.channel_id.not_in(exclude_channels))
    return stmt


def peek_next(db: Database, *, exclude_channels: Sequence[int] = (), now: datetime | None = None
              ) -> tuple[int, int] | None:
    """(post id, channel id) of the first claimable post outside exclude_channels; claims nothing."""
    with db.session() as session:
        row = session.execute(_claimable(now or utcnow(), exclude_channels).limit(1)).first()
    return (int(row[0]), int(row[1])) if row is not None else None


def claim_next(db: Database, worker: str, *, lease: timedelta, now: datetime | None = None,
               limit: int = 1, channel_ids: Sequence[int] | None = None,
               exclude_channels: Sequence[int] = ()) -> list[Post]:
    """Move up to ``limit`` due posts to sending under a lease, at most one per channel.

    On PostgreSQL the candidates are read with FOR UPDATE SKIP LOCKED; on both backends the move
    is a guarded UPDATE, so two workers can never hold the same post.
    """
    now = now or utcnow()
    stmt = _claimable(now, exclude_channels).limit(limit * 4 + len(exclude_channels))
    if channel_ids is not None:
        stmt = stmt.where(Post.channel_id.in_(channel_ids))
    claimed: list[Post] = []
    with db.session() as session:
        if db.dialect == "postgresql":
            stmt = stmt.with_for_update(of=Post, skip_locked=True)
        rows = session.execute(stmt).all()
        taken_channels: set[int] = set()
        for post_id, channel_id in rows:
            if len(claimed) >= limit or channel_id in taken_channels:
                continue
            result = session.execute(
                update(Post).where(Post.id == post_id, Post.state.in_((PENDING, RETRY)))
                .values(state=SENDING, worker=worker, lease_until=now + lease, attempts=Post.attempts + 1,
                        updated_at=now)
            )
            if _rowcount(result) == 1:
                taken_channels.add(channel_id)
                post = session.get(Post, post_id)
                assert post is not None
                session.refresh(post)
                claimed.append(post)
    return claimed


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (session.execute types every result as a plain Result)."""
    return cast(CursorResult[Any], result).rowcount or 0


def _finish(db: Database, post_id: int, worker: str, values: dict[str, Any]) -> bool:
    """Move a post this worker holds out of sending; False if it no longer holds it."""
    with db.session() as session:
        result = session.execute(
            update(Post).where(Post.id == post_id, Post.state == SENDING, Post.worker == worker).values(**values)
        )
        return _rowcount(result) == 1


def record_sent(db: Database, post_id: int, worker: str, message_id: int, *, now: datetime | None = None,
                plain_fallback: bool = False, error: str | None = None) -> bool:
    now = now or utcnow()
    return _finish(db, post_id, worker, dict(state=SENT, message_id=message_id, sent_at=now, updated_at=now,
                                             lease_until=None, plain_fallback=plain_fallback, error=error))


def record_retry(db: Database, post_id: int, worker: str, error: str, not_before: datetime, *,
                 now: datetime | None = None, count_attempt: bool = True) -> bool:
    now = now or utcnow()
    values: dict[str, Any] = dict(state=RETRY, not_before=not_before, error=error, updated_at=now, lease_until=None)
    if not count_attempt:
        values["attempts"] = Post.attempts - 1
    return _finish(db, post_id, worker, values)


def record_failed(db: Database, post_id: int, worker: str, error: str, *, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return _finish(db, post_id, worker, dict(state=FAILED, error=error, updated_at=now, lease_until=None))


def record_uncertain(db: Database, post_id: int, worker: str, error: str, *, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return _finish(db, post_id, worker, dict(state=UNCERTAIN, error=error, updated_at=now, lease_until=None))


def release(db: Database, post_id: int, worker: str, error: str, *, now: datetime | None = None) -> bool:
    """Hand a post back untouched (its channel was paused mid-flight, the request never left)."""
    now = now or utcnow()
    return _finish(db, post_id, worker, dict(state=PENDING, error=error, updated_at=now, lease_until=None,
                                             attempts=Post.attempts - 1))


# ---------------------------------------------------------------------------------------------
# An admin's word on uncertain and failed posts


def resolve_post(db: Database, post_id: int, *, action: str, actor: str, message_id: int | None = None,
                 now: datetime | None = None) -> Post:
    """confirm (it was sent), resend (queue it again), or drop (skip it for good)."""
    from digests.errors import NotFoundError
    from digests.store.audit import audit

    now = now or utcnow()
    with db.session() as session:
        post = session.get(Post, post_id)
        if post is None or post.state not in (UNCERTAIN, FAILED):
            raise NotFoundError(f"no uncertain or failed post {post_id}")
        if action == "confirm":
            post.state, post.sent_at, post.message_id = SENT, now, message_id or post.message_id
        elif action == "resend":
            post.state, post.not_before, post.attempts = PENDING, None, 0
        elif action == "drop":
            post.state = SKIPPED
        else:
            raise ValueError(f"unknown action {action!r}: confirm, resend or drop")
        post.updated_at = now
        audit(session, actor, f"post-{action}", f"post:{post_id}", {"items": post.item_ids}, now=now)
        return post


def skip_item(db: Database, channel_name: str, item_id: int, *, actor: str, now: datetime | None = None) -> None:
    """Never post this item to the channel (a delivery row marked skipped, no post)."""
    from digests.store.audit import audit
    from digests.store.items import get_item

    now = now or utcnow()
    with db.session() as session:
        channel = get_channel(session, channel_name)
        get_item(session, item_id)
        if session.scalar(select(Delivery.id).where(Delivery.channel_id == channel.id, Delivery.item_id == item_id)):
            raise ValueError(f"item {item_id} is already scheduled or sent in {channel_name}")
        session.add(Delivery(channel_id=channel.id, item_id=item_id, post_id=None, skipped=True, created_at=now))
        audit(session, actor, "skip", f"channel:{channel_name}", {"item": item_id}, now=now)


# ---------------------------------------------------------------------------------------------
# Reading state


def list_posts(session: Session, *, states: Sequence[str] | None = None, channel_id: int | None = None,
               limit: int | None = None, newest_first: bool = False) -> list[Post]:
    stmt = select(Post)
    if states:
        stmt = stmt.where(Post.state.in_(states))
    if channel_id is not None:
        stmt = stmt.where(Post.channel_id == channel_id)
    stmt = stmt.order_by(Post.id.desc() if newest_first else Post.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def post_json(post: Post, channel_name: str) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": post.id, "channel": channel_name, "item_ids": list(post.item_ids), "state": post.state,
        "mode": post.mode, "part": post.part, "digest_number": post.digest_number,
        "message_id": post.message_id, "attempts": post.attempts, "created_at": iso(post.created_at),
        "sent_at": iso(post.sent_at), "not_before": iso(post.not_before), "slot_at": iso(post.slot_at),
        "plain_fallback": post.plain_fallback, "error": post.error,
    }


def bump_counter(db: Database, key: str, amount: int = 1) -> None:
    """Add to a persistent counter (429s received, ...)."""
    with db.session() as session:
        row = session.get(KeyValue, key)
        if row is None:
            session.add(KeyValue(key=key, value={"count": amount}))
        else:
            row.value = {"count": int(row.value.get("count", 0)) + amount}


def read_counter(session: Session, key: str) -> int:
    row = session.get(KeyValue, key)
    return int(row.value.get("count", 0)) if row is not None else 0


def last_slot(session: Session, channel_id: int) -> datetime | None:
    return session.scalar(select(func.max(Post.slot_at)).where(Post.channel_id == channel_id))


def queue_counts(session: Session) -> dict[tuple[int, str], int]:
    rows = session.execute(select(Post.channel_id, Post.state, func.count()).group_by(Post.channel_id, Post.state))
    return {(channel_id, state): count for channel_id, state, count in rows}

