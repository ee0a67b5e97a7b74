"""Edits and deletions of sent messages in the database: what changed, and the edit outbox.

pending -> sending (claimed under a lease) -> done | not_found | failed | too_late
                                          -> pending(not_before)        (retry, flood wait)
        -> superseded (a newer edit of the same post was queued first)
An edit is committed as pending before any request and moved to sending in its own transaction
before the request, like a post's send. Unlike a send, an edit whose outcome is unknown (its
lease ran out, its answer was lost) is simply made again: editing a message twice to the same
content leaves it as once, and Telegram answers the second "message is not modified".
Which state follows which outcome is publishing's decision (digests.publishing.edits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, Select, and_, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from digests.clock import utcnow
from digests.formatting.content_hash import content_hash
from digests.states import (
    DRY_RUN,
    EDIT_DONE,
    EDIT_PENDING,
    EDIT_SENDING,
    EDIT_SUPERSEDED,
    MESSAGE_DELETED,
    SENT,
    SKIPPED,
)
from digests.store import keyvalue
from digests.store.db import Database
from digests.store.models import Channel, Commentary, Delivery, Item, KeyValue, Post, PostEdit

_MARK_KEY = "edits.change_mark"
_PG_CORRECTIONS_LOCK = 741_852_964  # arbitrary, beside db.py's migration lock
_IN_CHUNK = 1000


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount or 0


# ---------------------------------------------------------------------------------------------
# What changed: when the last look for changes was made, and the posts changes since touch


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for offset in range(0, len(ids), _IN_CHUNK):
        yield ids[offset:offset + _IN_CHUNK]


def corrections_turn(session: Session) -> bool:
    """Whether this transaction may look for changes: one worker at a time on PostgreSQL, held to its end.

    Two workers looking at once would both queue the same edit (harmless, as edits are
    idempotent, but the second is one request more).
    """
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: one writer at a time already
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _PG_CORRECTIONS_LOCK}))


def read_mark(session: Session) -> datetime | None:
    """When the last look for changes was made (None before the first)."""
    row = session.get(KeyValue, _MARK_KEY)
    stamp = row.value.get("at") if row is not None else None
    return datetime.fromisoformat(stamp) if stamp else None


def write_mark(session: Session, at: datetime) -> None:
    keyvalue.put(session, _MARK_KEY, {"at": at.isoformat()})


def changed_post_ids(session: Session, since: datetime) -> list[int]:
    """Sent posts holding an item updated, or given commentary, after ``since``.

    Posts already checked against that change are left out (checked_at). Read in steps, each by
    its own index (items.updated_at, commentaries.created_at, deliveries.item_id, the posts' key):
    joined in one statement, SQLite would walk every sent post instead.
    """
    changed: dict[int, datetime] = {}  # item id -> its newest change in range
    items = select(Item.id, Item.updated_at).where(Item.updated_at > since)
    comments = select(Commentary.item_id, Commentary.created_at).where(Commentary.created_at > since)
    for item_id, moment in [*session.execute(items), *session.execute(comments)]:
        if item_id not in changed or moment > changed[item_id]:
            changed[item_id] = moment
    newest: dict[int, datetime] = {}  # post id -> the newest change of its items
    for chunk in _chunks(sorted(changed)):
        for post_id, item_id in session.execute(select(Delivery.post_id, Delivery.item_id).where(
                Delivery.item_id.in_(chunk), Delivery.post_id.is_not(None))):
            if post_id is None:
                continue
            if post_id not in newest or changed[item_id] > newest[post_id]:
                newest[post_id] = changed[item_id]
    found: list[int] = []
    for chunk in _chunks(sorted(newest)):
        for post_id, checked_at in session.execute(select(Post.id, Post.checked_at).where(
                Post.state == SENT, Post.id.in_(chunk), Post.message_id.is_not(None))):
            if checked_at is None or newest[post_id] > checked_at:
                found.append(post_id)
    return sorted(found)


@dataclass(slots=True)
class SentGroup:
    """Posts rendered together (one post, or every part of one digest), their channel and items.

    ``changed_at`` is the newest change among the items and their commentary; ``queued`` holds
    each post's newest edit still to be made.
    """

    channel: Channel
    posts: list[Post]
    items: list[Item]
    changed_at: datetime | None
    queued: dict[int, PostEdit]


def sent_groups(session: Session, post_ids: Sequence[int]) -> list[SentGroup]:
    """The groups the posts belong to, each once, with their items in post order (a few queries in all)."""
    found: dict[int, Post] = {}
    for chunk in _chunks(post_ids):
        found.update((p.id, p) for p in session.scalars(select(Post).where(Post.id.in_(chunk))))
    members: dict[tuple[int, int], list[Post]] = {}
    for channel_id, number in {(p.channel_id, p.digest_number) for p in found.values()
                               if p.mode == "digest" and p.digest_number is not None}:
        members[(channel_id, number)] = list(session.scalars(
            select(Post).where(Post.channel_id == channel_id, Post.digest_number == number, Post.mode == "digest",
                               Post.state.not_in((DRY_RUN, SKIPPED)))
            .order_by(Post.part, Post.id)))
    grouped: list[list[Post]] = []
    seen: set[int] = set()
    for post_id in post_ids:
        post = found.get(post_id)
        if post is None or post.id in seen:
            continue
        group = members.get((post.channel_id, post.digest_number or 0), [post]) if post.mode == "digest" else [post]
        seen.update(p.id for p in group)
        grouped.append(group)
    item_ids = sorted({int(i) for group in grouped for p in group for i in p.item_ids})
    items: dict[int, Item] = {}
    commented: dict[int, datetime] = {}
    for chunk in _chunks(item_ids):
        items.update((i.id, i) for i in session.scalars(select(Item).where(Item.id.in_(chunk))))
        commented.update((item_id, moment) for item_id, moment in session.execute(
            select(Commentary.item_id, func.max(Commentary.created_at))
            .where(Commentary.item_id.in_(chunk)).group_by(Commentary.item_id)))
    channels = {c.id: c for c in session.scalars(select(Channel).where(
        Channel.id.in_({group[0].channel_id for group in grouped})))}
    waiting = _queued(session, [p.id for group in grouped for p in group])
    groups = []
    for group in grouped:
        ids = [int(i) for p in group for i in p.item_ids]
        moments = [m for i in ids for m in (items[i].updated_at if i in items else None, commented.get(i))
                   if m is not None]
        groups.append(SentGroup(channels[group[0].channel_id], group, [items[i] for i in ids if i in items],
                                max(moments) if moments else None,
                                {p.id: waiting[p.id] for p in group if p.id in waiting}))
    return groups


def _queued(session: Session, post_ids: Sequence[int]) -> dict[int, PostEdit]:
    """Each post's newest edit still to be made (pending or in flight)."""
    newest: dict[int, PostEdit] = {}
    for chunk in _chunks(post_ids):
        for edit in session.scalars(select(PostEdit).where(
                PostEdit.post_id.in_(chunk), PostEdit.state.in_((EDIT_PENDING, EDIT_SENDING)))):
            if edit.post_id not in newest or edit.id > newest[edit.post_id].id:
                newest[edit.post_id] = edit
    return newest


# ---------------------------------------------------------------------------------------------
# Queueing


def shown_hash(post: Post) -> str:
    """The content hash of what the post's message shows now."""
    return post.content_hash or content_hash(post.html, post.photo)


def queue_edit(session: Session, post: Post, *, action: str, now: datetime, html: str | None = None,
               photo: str | None = None, state: str = EDIT_PENDING, error: str | None = None,
               queued: PostEdit | None = None) -> PostEdit:
    """Record an edit (or deletion) of the post; ``queued``, its edit still to be made, is superseded.

    ``state`` other than pending records an edit decided without a request (too late, does not fit).
    """
    if state == EDIT_PENDING and queued is not None:
        session.execute(update(PostEdit).where(PostEdit.post_id == post.id, PostEdit.state == EDIT_PENDING)
                        .values(state=EDIT_SUPERSEDED, done_at=now).execution_options(synchronize_session=False))
    edit = PostEdit(post_id=post.id, channel_id=post.channel_id, action=action, html=html, photo=photo,
                    content_hash=content_hash(html, photo) if html is not None else None, state=state,
                    attempts=0, error=error, created_at=now, done_at=None if state == EDIT_PENDING else now)
    session.add(edit)
    post.edit_state = state
    post.edit_error = error
    return edit


def mark_checked(post: Post, changed_at: datetime | None) -> None:
    """The post reflects its items as of ``changed_at``; its content hash is stored on the way."""
    if changed_at is not None and (post.checked_at is None or changed_at > post.checked_at):
        post.checked_at = changed_at
    if post.content_hash is None:
        post.content_hash = content_hash(post.html, post.photo)


# ---------------------------------------------------------------------------------------------
# The outbox: claiming and recording


@dataclass(frozen=True, slots=True)
class EditJob:
    """A claimed edit with what the sender needs of its post (the ORM rows stay in the store)."""

    id: int
    post_id: int
    channel_id: int
    action: str
    html: str | None
    photo: str | None
    attempts: int
    message_id: int
    shown_photo: str | None  # the photo the message holds now
    sent_at: datetime | None


def expire_edit_leases(db: Database, *, now: datetime | None = None) -> int:
    """Edits left sending past their lease go back to pending (made again), unless a newer one waits."""
    now = now or utcnow()
    newer = aliased(PostEdit)
    newer_waits = exists().where(newer.post_id == PostEdit.post_id, newer.id > PostEdit.id,
                                 newer.state == EDIT_PENDING)
    expired = and_(PostEdit.state == EDIT_SENDING, PostEdit.lease_until < now)
    with db.session() as session:
        if session.scalar(select(PostEdit.id).where(expired).limit(1)) is None:
            return 0  # the usual case, answered without taking SQLite's write lock
        superseded = session.execute(update(PostEdit).where(expired, newer_waits)
                                     .values(state=EDIT_SUPERSEDED, done_at=now, lease_until=None))
        again = session.execute(update(PostEdit).where(expired).values(
            state=EDIT_PENDING, lease_until=None,
            error=func.coalesce(PostEdit.error, "the worker stopped while editing; the edit is made again")))
        return _rowcount(superseded) + _rowcount(again)


def _claimable(now: datetime, exclude_channels: Sequence[int]) -> Select[int, int]:
    """(edit id, channel id) of edits that may go now, oldest first: one in flight per post at most."""
    other = aliased(PostEdit)
    in_flight = exists().where(other.post_id == PostEdit.post_id, other.state == EDIT_SENDING)
    stmt = (select(PostEdit.id, PostEdit.channel_id)
            .join(Channel, Channel.id == PostEdit.channel_id)
            .where(PostEdit.state == EDIT_PENDING, Channel.paused.is_(False), ~in_flight,
                   or_(PostEdit.not_before.is_(None), PostEdit.not_before <= now))
            .order_by(PostEdit.id))
    if exclude_channels:
        stmt = stmt.where(PostEdit.channel_id.not_in(exclude_channels))
    return stmt


def peek_next_edit(db: Database, *, exclude_channels: Sequence[int] = (), now: datetime | None = None
                   ) -> tuple[int, int] | None:
    """(edit id, channel id) of the first claimable edit outside exclude_channels; claims nothing."""
    with db.session() as session:
        row = session.execute(_claimable(now or utcnow(), exclude_channels).limit(1)).first()
    return (int(row[0]), int(row[1])) if row is not None else None


def claim_edit(db: Database, edit_id: int, worker: str, *, lease: timedelta,
               now: datetime | None = None) -> EditJob | None:
    """Move the edit to sending under a lease; None when another worker took it first."""
    now = now or utcnow()
    with db.session() as session:
        if db.dialect == "postgresql":
            locked = session.scalar(select(PostEdit.id).where(PostEdit.id == edit_id)
                                    .with_for_update(skip_locked=True))
            if locked is None:
                return None
        result = session.execute(
            update(PostEdit).where(PostEdit.id == edit_id, PostEdit.state == EDIT_PENDING)
            .values(state=EDIT_SENDING, worker=worker, lease_until=now + lease, attempts=PostEdit.attempts + 1))
        if _rowcount(result) != 1:
            return None
        edit = session.get(PostEdit, edit_id)
        assert edit is not None
        session.refresh(edit)
        post = session.get(Post, edit.post_id)
        assert post is not None and post.message_id is not None
        return EditJob(edit.id, edit.post_id, edit.channel_id, edit.action, edit.html, edit.photo, edit.attempts,
                       post.message_id, post.photo, post.sent_at)


def _finish(session: Session, edit_id: int, worker: str, values: dict[str, Any]) -> bool:
    result = session.execute(update(PostEdit).where(PostEdit.id == edit_id, PostEdit.state == EDIT_SENDING,
                                                    PostEdit.worker == worker).values(**values))
    return _rowcount(result) == 1


def _newer_waits(session: Session, post_id: int, edit_id: int) -> bool:
    return session.scalar(select(PostEdit.id).where(PostEdit.post_id == post_id, PostEdit.id > edit_id,
                                                    PostEdit.state == EDIT_PENDING).limit(1)) is not None


def record_edit_done(db: Database, job: EditJob, worker: str, *, html: str | None, photo: str | None,
                     note: str | None = None, now: datetime | None = None) -> bool:
    """The message shows ``html`` and ``photo`` now (or, for a deletion, is gone); the post says so."""
    now = now or utcnow()
    with db.session() as session:
        if not _finish(session, job.id, worker, dict(state=EDIT_DONE, done_at=now, lease_until=None, error=note)):
            return False
        post = session.get(Post, job.post_id)
        assert post is not None
        if job.action == "delete":
            post.edit_state = MESSAGE_DELETED
        else:
            assert html is not None
            post.html, post.photo, post.content_hash = html, photo, content_hash(html, photo)
            post.edit_state = EDIT_PENDING if _newer_waits(session, post.id, job.id) else EDIT_DONE
        post.edit_count += 1
        post.last_edit_at = now
        post.edit_error = note
        return True


def record_edit_retry(db: Database, edit_id: int, worker: str, error: str, not_before: datetime, *,
                      count_attempt: bool = True) -> bool:
    """Pending again from not_before; ``count_attempt`` False gives back the attempt of this claim."""
    values: dict[str, Any] = dict(state=EDIT_PENDING, not_before=not_before, error=error, lease_until=None)
    if not count_attempt:
        values["attempts"] = PostEdit.attempts - 1
    with db.session() as session:
        return _finish(session, edit_id, worker, values)


def record_edit_end(db: Database, job: EditJob, worker: str, state: str, error: str, *,
                    now: datetime | None = None) -> bool:
    """The edit will not be made (not found, failed, too late): recorded on the edit and its post."""
    now = now or utcnow()
    with db.session() as session:
        if not _finish(session, job.id, worker, dict(state=state, error=error, done_at=now, lease_until=None)):
            return False
        post = session.get(Post, job.post_id)
        assert post is not None
        if not _newer_waits(session, post.id, job.id):
            post.edit_state, post.edit_error = state, error
        return True


def release_edit(db: Database, edit_id: int, worker: str, error: str) -> bool:
    """Hand an edit back untouched (its channel was paused: the request never left)."""
    with db.session() as session:
        return _finish(session, edit_id, worker, dict(state=EDIT_PENDING, error=error, lease_until=None,
                                                      not_before=None, attempts=PostEdit.attempts - 1))


def edits_waiting(session: Session, channel_ids: Sequence[int]) -> bool:
    """Whether an edit of these channels waits out a retry (flood control, a transient error)."""
    return session.scalar(
        select(PostEdit.id).join(Channel, Channel.id == PostEdit.channel_id)
        .where(PostEdit.channel_id.in_(channel_ids), PostEdit.state == EDIT_PENDING,
               PostEdit.not_before.is_not(None), Channel.paused.is_(False)).limit(1)) is not None

