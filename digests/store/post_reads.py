"""Reads over posts and deliveries for the read models: where items were posted, last posts, counts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digests.states import SENT
from digests.store.models import Channel, Delivery, Post


def sent_posts_of_items(session: Session, item_ids: Sequence[int]) -> list[tuple[int, str, str, int]]:
    """(item id, channel name, chat id, message id) of every sent message holding one of the items, oldest first."""
    if not item_ids:
        return []
    rows = session.execute(
        select(Delivery.item_id, Channel.name, Channel.chat_id, Post.message_id)
        .join(Post, Post.id == Delivery.post_id)
        .join(Channel, Channel.id == Delivery.channel_id)
        .where(Delivery.item_id.in_(list(item_ids)), Post.state == SENT, Post.message_id.is_not(None))
        .order_by(Post.sent_at, Post.id)
    )
    return [(item_id, name, chat_id, message_id) for item_id, name, chat_id, message_id in rows
            if message_id is not None]


def last_sent_posts(session: Session) -> dict[int, Post]:
    """channel id -> the channel's most recently sent post, for the channels that have one."""
    last: dict[int, Post] = {}
    for channel_id in session.scalars(select(Channel.id)):
        post = session.scalar(select(Post).where(Post.channel_id == channel_id, Post.state == SENT)
                              .order_by(Post.sent_at.desc(), Post.id.desc()).limit(1))
        if post is not None:
            last[channel_id] = post
    return last


def count_posts(session: Session, states: Sequence[str], *, channel_id: int | None = None) -> int:
    stmt = select(func.count(Post.id)).where(Post.state.in_(list(states)))
    if channel_id is not None:
        stmt = stmt.where(Post.channel_id == channel_id)
    return session.scalar(stmt) or 0


def has_posts(session: Session, channel_ids: Sequence[int], states: Sequence[str]) -> bool:
    """Whether any post of these channels is in one of the states."""
    stmt = select(Post.id).where(Post.channel_id.in_(list(channel_ids)), Post.state.in_(list(states))).limit(1)
    return session.scalar(stmt) is not None


def post_states(session: Session, post_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """post id -> (state, channel name)."""
    if not post_ids:
        return {}
    rows = session.execute(select(Post.id, Post.state, Channel.name).join(Channel, Channel.id == Post.channel_id)
                           .where(Post.id.in_(list(post_ids))))
    return {post_id: (state, name) for post_id, state, name in rows}
