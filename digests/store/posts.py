"""Posts, deliveries and counters in the database: the SQL of the delivery state machine.

pending -> sending (claimed under a lease) -> sent(message_id, sent_at)
                                          -> retry(not_before) -> sending ...
                                          -> failed(error, attempts)
                                          -> uncertain (lease expired or outcome unknown)
A post is committed as pending before any request is made, and moved to sending in its own
transaction before the request, so a crash at any point leaves a row that says what happened:
pending (never sent), sending past its lease (maybe sent: uncertain), or sent.
Which state follows which outcome is publishing's decision (digests.publishing.retry).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, Select, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from digests.clock import utcnow
from digests.errors import DigestError
from digests.formatting.content_hash import content_hash
from digests.states import FAILED, PENDING, RETRY, SENDING, SENT, UNCERTAIN
from digests.store import keyvalue
from digests.store.db import Database
from digests.store.models import Channel, Commentary, Delivery, Item, KeyValue, Post

_IN_CHUNK = 1000  # ids per IN (...) list
_NARROWABLE = {"source": Item.source, "category": Item.category, "format": Item.format}


class AlreadyDelivered(DigestError):
    """Another worker delivered one of these items to the channel meanwhile."""


# ---------------------------------------------------------------------------------------------
# What selection reads: a channel's undelivered items in its order, and who has commentary


def _undelivered(channel_id: int) -> Any:
    return ~exists().where(Delivery.channel_id == channel_id, Delivery.item_id == Item.id)


def _beyond(position: tuple[datetime, int], newest_first: bool) -> Any:
    """Items after ``position`` in the channel's order (sort_at, id)."""
    key = tuple_(Item.sort_at, Item.id)
    return key < position if newest_first else key > position


def _up_to(position: tuple[datetime, int], newest_first: bool) -> Any:
    """Items at or before ``position`` in the channel's order (sort_at, id)."""
    key = tuple_(Item.sort_at, Item.id)
    return key >= position if newest_first else key <= position


@dataclass(slots=True)
class Candidate:
    """What selection reads of an item: its place in the channel's order and what the rules look at.

    A slot may read thousands of rows (a shuffle draws from up to 20,000) to keep a handful: these
    are a fraction of an Item's size (no title, summary or links) and stay out of the session.
    """

    id: int
    sort_at: datetime
    published_at: datetime | None
    created_at: datetime
    format: str
    category: str
    tags: list[str]
    source: str
    commentary: str
    removed: bool


_CANDIDATE_COLUMNS = (Item.id, Item.sort_at, Item.published_at, Item.created_at, Item.format, Item.category,
                      Item.tags, Item.source, Item.commentary, Item.removed)


def undelivered_in_order(session: Session, channel_id: int, *, newest_first: bool, limit: int,
                         mark: tuple[datetime, int] | None = None,
                         after: tuple[datetime, int] | None = None,
                         only: Mapping[str, Sequence[str]] | None = None) -> list[Candidate]:
    """The channel's next undelivered items by (sort_at, id), past its cursor ``mark`` and the page ``after``.

    ``only``: item columns (source, category, format) and the values they must have.
    """
    stmt = select(*_CANDIDATE_COLUMNS).where(Item.removed.is_(False), _undelivered(channel_id))
    for column, values in (only or {}).items():
        stmt = stmt.where(_NARROWABLE[column].in_(values))
    for bound in (mark, after):
        if bound is not None:
            stmt = stmt.where(_beyond(bound, newest_first))
    sort = (Item.sort_at.desc(), Item.id.desc()) if newest_first else (Item.sort_at, Item.id)
    return [Candidate(*row) for row in session.execute(stmt.order_by(*sort).limit(limit))]


def item_ids_created_since(session: Session, since: datetime, *, limit: int) -> list[int]:
    """Items stored since ``since``, oldest first (found by the created_at index alone)."""
    return list(session.scalars(select(Item.id).where(Item.created_at >= since).order_by(Item.created_at)
                                .limit(limit)))


def undelivered_up_to(session: Session, channel_id: int, item_ids: Sequence[int], *, newest_first: bool,
                      mark: tuple[datetime, int]) -> list[Candidate]:
    """Those of ``item_ids`` still due to the channel that sort at or before its cursor ``mark``."""
    found: list[Candidate] = []
    for offset in range(0, len(item_ids), _IN_CHUNK):
        found.extend(Candidate(*row) for row in session.execute(
            select(*_CANDIDATE_COLUMNS).where(Item.id.in_(item_ids[offset:offset + _IN_CHUNK]),
                                              Item.removed.is_(False), _undelivered(channel_id),
                                              _up_to(mark, newest_first))
        ))
    return found


def items_in_order(session: Session, item_ids: Sequence[int]) -> list[Item]:
    """The items of ``item_ids``, in that order (those that no longer exist left out)."""
    found = {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(item_ids)))}
    return [found[item_id] for item_id in item_ids if item_id in found]


def commented_ids(session: Session, item_ids: Sequence[int]) -> set[int]:
    """Those of ``item_ids`` with editor or plugin commentary."""
    if not item_ids:
        return set()
    return set(session.scalars(select(Commentary.item_id).where(Commentary.item_id.in_(item_ids))))


def uncommented_items(session: Session, item_ids: Sequence[int]) -> list[Item]:
    """Those of ``item_ids`` with no commentary at all: none from the source, the editors or a plugin."""
    commented = commented_ids(session, item_ids)
    return [item for item in session.scalars(select(Item).where(Item.id.in_(item_ids), Item.commentary == ""))
            if item.id not in commented]


def delivered_ids(session: Session, channel_id: int, item_ids: Sequence[int]) -> set[int]:
    if not item_ids:
        return set()
    return set(session.scalars(
        select(Delivery.item_id).where(Delivery.channel_id == channel_id, Delivery.item_id.in_(item_ids))
    ))


def live_items(session: Session, item_ids: Sequence[int]) -> list[Item]:
    """The items of ``item_ids`` not removed."""
    return list(session.scalars(select(Item).where(Item.id.in_(item_ids), Item.removed.is_(False))))


# ---------------------------------------------------------------------------------------------
# Planning: posts and their deliveries, committed before anything is sent


@contextmanager
def planning(db: Database) -> Iterator[Session]:
    """A transaction that plans posts; AlreadyDelivered when an item reached the channel meanwhile."""
    try:
        with db.session() as session:
            yield session
    except IntegrityError as exc:  # uq_deliveries_channel_item
        raise AlreadyDelivered(str(exc.orig)) from None


def slot_planned(session: Session, channel_id: int, slot_at: datetime) -> bool:
    return session.scalar(
        select(Post.id).where(Post.channel_id == channel_id, Post.slot_at == slot_at).limit(1)
    ) is not None


def add_post(session: Session, channel_id: int, **values: Any) -> Post:
    post = Post(channel_id=channel_id, **values)
    session.add(post)
    session.flush()
    return post


def planned_slots(session: Session, slots: Sequence[tuple[int, datetime]]) -> set[tuple[int, datetime]]:
    """Those (channel id, slot) of ``slots`` that already have posts: slot_planned for many, in one query."""
    wanted = set(slots)
    if not wanted:
        return set()
    channel_ids = sorted({channel_id for channel_id, _ in wanted})
    moments = sorted({moment for _, moment in wanted})
    found: set[tuple[int, datetime]] = set()
    for offset in range(0, len(channel_ids), _IN_CHUNK):
        rows = session.execute(select(Post.channel_id, Post.slot_at).distinct().where(
            Post.channel_id.in_(channel_ids[offset:offset + _IN_CHUNK]), Post.slot_at.in_(moments)))
        found.update((int(channel_id), moment) for channel_id, moment in rows if moment is not None)
    return found & wanted


def delivered_pairs(session: Session, wanted: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """Those (channel id, item id) of ``wanted`` with a delivery: delivered_ids for many channels at once."""
    pairs = set(wanted)
    channel_ids = sorted({channel_id for channel_id, _ in pairs})
    item_ids = sorted({item_id for _, item_id in pairs})
    found: set[tuple[int, int]] = set()
    for offset in range(0, len(item_ids), _IN_CHUNK):
        rows = session.execute(select(Delivery.channel_id, Delivery.item_id).where(
            Delivery.channel_id.in_(channel_ids), Delivery.item_id.in_(item_ids[offset:offset + _IN_CHUNK])))
        found.update((int(channel_id), int(item_id)) for channel_id, item_id in rows)
    return found & pairs


_POST_DEFAULTS: dict[str, Any] = {
    "attempts": 0, "not_before": None, "lease_until": None, "worker": None, "message_id": None,
    "plain_fallback": False, "error": None, "content_hash": None, "edit_count": 0, "last_edit_at": None,
    "edit_state": None, "edit_error": None, "checked_at": None,
}


def add_posts(session: Session, rows: Sequence[dict[str, Any]]) -> list[Post]:
    """Many posts (each a dict of Post columns, the same keys in each), inserted as one batch.

    The posts handed back are plain copies of the rows, ids included, outside the session.
    PostgreSQL: the ids come from the sequence in one query and the rows go as one pipelined
    executemany (what an ORM flush or INSERT ... RETURNING of the lot costs is three to eight
    times more, most of it psycopg parsing the long multi-row statement); SQLite: one
    INSERT ... RETURNING of the lot.
    """
    if not rows:
        return []
    full = [{**_POST_DEFAULTS, **values} for values in rows]
    if session.get_bind().dialect.name == "postgresql":
        ids = list(session.scalars(select(func.nextval(func.pg_get_serial_sequence("posts", "id")))
                                   .select_from(func.generate_series(1, len(full)))))
        for values, post_id in zip(full, ids, strict=True):
            values["id"] = post_id
        session.execute(insert(Post), full)
    else:
        ids = list(session.scalars(insert(Post).returning(Post.id, sort_by_parameter_order=True), full))
        for values, post_id in zip(full, ids, strict=True):
            values["id"] = post_id
    return [Post(**values) for values in full]


def add_deliveries_of(session: Session, planned: Sequence[Post], *, now: datetime) -> None:
    """add_deliveries for many posts (their item_ids, in order), as one executemany."""
    rows = [{"channel_id": post.channel_id, "item_id": item_id, "post_id": post.id, "position": position,
             "skipped": False, "created_at": now}
            for post in planned for position, item_id in enumerate(post.item_ids)]
    if rows:
        session.execute(insert(Delivery), rows)


def add_deliveries(session: Session, post: Post, item_ids: Sequence[int], *, now: datetime) -> None:
    """The post's items, in its order; the unique (channel, item) keeps an item to one post per channel."""
    for position, item_id in enumerate(item_ids):
        session.add(Delivery(channel_id=post.channel_id, item_id=item_id, post_id=post.id, position=position,
                             created_at=now))


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
    channel is still waiting or in flight, its channel is neither paused nor retired and its
    wait is over.
    """
    earlier = aliased(Post)
    blocked_by_earlier = exists().where(
        earlier.channel_id == Post.channel_id, earlier.id < Post.id,
        earlier.state.in_((PENDING, RETRY, SENDING)),
    )
    stmt = (
        select(Post.id, Post.channel_id)
        .join(Channel, Channel.id == Post.channel_id)
        .where(Post.state.in_((PENDING, RETRY)), Channel.paused.is_(False), Channel.retired_at.is_(None),
               ~blocked_by_earlier,
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
    """Claimable again from not_before; ``count_attempt`` False gives back the attempt of this claim."""
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
# What an admin's review reads and writes


def get_post(session: Session, post_id: int) -> Post | None:
    return session.get(Post, post_id)


def has_delivery(session: Session, channel_id: int, item_id: int) -> bool:
    """Whether the item is scheduled, sent or skipped in the channel."""
    return session.scalar(
        select(Delivery.id).where(Delivery.channel_id == channel_id, Delivery.item_id == item_id)
    ) is not None


def add_skip(session: Session, channel_id: int, item_id: int, *, now: datetime) -> None:
    """A delivery row marked skipped, with no post: the item never goes to the channel."""
    session.add(Delivery(channel_id=channel_id, item_id=item_id, post_id=None, skipped=True, created_at=now))


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
        # what the message shows after its edits (digests.store.edits)
        "edits": post.edit_count, "last_edit_at": iso(post.last_edit_at), "edit_state": post.edit_state,
        "edit_error": post.edit_error, "content_hash": post.content_hash or content_hash(post.html, post.photo),
    }


def bump_counter(db: Database, key: str, amount: int = 1) -> None:
    """Add to a persistent counter (429s received, ...)."""
    with db.session() as session:
        keyvalue.add_count(session, key, amount)


def read_counter(session: Session, key: str) -> int:
    row = session.get(KeyValue, key)
    return int(row.value.get("count", 0)) if row is not None else 0


def retry_waiting(session: Session, channel_ids: Sequence[int]) -> bool:
    """Whether a post of these channels waits to be retried (flood control, a transient error)."""
    return session.scalar(
        select(Post.id).where(Post.channel_id.in_(channel_ids), Post.state == RETRY).limit(1)
    ) is not None


def last_slot(session: Session, channel_id: int) -> datetime | None:
    return session.scalar(select(func.max(Post.slot_at)).where(Post.channel_id == channel_id))


def queue_counts(session: Session) -> dict[tuple[int, str], int]:
    rows = session.execute(select(Post.channel_id, Post.state, func.count()).group_by(Post.channel_id, Post.state))
    return {(channel_id, state): count for channel_id, state, count in rows}
