"""Read models the bot's commands show: where items were posted, channel overviews, queue previews, stats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digests import search
from digests.channels import settings_of
from digests.config import ChannelConfig
from digests.formatting.render import RenderedPost, make_renderer
from digests.items import ItemView
from digests.publishing.delivery import due_items, queue_counts, read_counter
from digests.store.channels import all_channels, get_channel
from digests.store.items import count_items, get_item, item_views, list_items
from digests.store.models import (
    FAILED,
    PENDING,
    RETRY,
    SENDING,
    SENT,
    UNCERTAIN,
    Channel,
    Delivery,
    Item,
    Post,
)

WAITING_STATES = (PENDING, RETRY, SENDING)


@dataclass(frozen=True, slots=True)
class PostRef:
    """A sent message that holds an item: the channel's name and chat id, and the message id."""

    channel: str
    chat_id: str
    message_id: int


@dataclass(slots=True)
class ChannelSummary:
    name: str
    chat_id: str
    paused: bool
    paused_reason: str | None
    schedule: list[str]
    timezone: str
    mode: str
    per_slot: int
    waiting: int
    sent: int
    last_post: PostRef | None
    last_sent_at: datetime | None


@dataclass(slots=True)
class QueuePreview:
    channel: str
    paused: bool
    planned: int  # posts already planned and waiting to be sent
    upcoming: list[ItemView]  # the next items, in the channel's order
    next_posts: list[RenderedPost]  # the next slot as it would be posted now


@dataclass(slots=True)
class DeliveryStats:
    items: int
    sent: int
    waiting: int
    failed: int
    uncertain: int
    flood_waits: int
    channels: list[ChannelSummary] = field(default_factory=list)


def sent_posts_of_items(session: Session, item_ids: Sequence[int]) -> dict[int, list[PostRef]]:
    """For each item id, the sent messages (in any channel) that hold it, oldest first."""
    if not item_ids:
        return {}
    rows = session.execute(
        select(Delivery.item_id, Channel.name, Channel.chat_id, Post.message_id)
        .join(Post, Post.id == Delivery.post_id)
        .join(Channel, Channel.id == Delivery.channel_id)
        .where(Delivery.item_id.in_(list(item_ids)), Post.state == SENT, Post.message_id.is_not(None))
        .order_by(Post.sent_at, Post.id)
    )
    refs: dict[int, list[PostRef]] = {}
    for item_id, name, chat_id, message_id in rows:
        if message_id is not None:
            refs.setdefault(item_id, []).append(PostRef(name, chat_id, message_id))
    return refs


@dataclass(slots=True)
class Listing:
    """Items to show a subscriber, with the channel messages that hold them."""

    views: list[ItemView]
    posts: dict[int, list[PostRef]]
    has_more: bool = False
    total: int | None = None  # all matches of a search, when counted


def _listing(session: Session, items: Sequence[Item], has_more: bool = False, total: int | None = None) -> Listing:
    views = item_views(session, list(items))
    return Listing(views, sent_posts_of_items(session, [view.id for view in views]), has_more, total)


def search_listing(session: Session, query: str, *, limit: int, offset: int = 0) -> Listing:
    """One page of search results."""
    page = search.search_items(session, query, limit=limit, offset=offset)
    return _listing(session, page.results, page.has_more, page.total)


def latest_listing(session: Session, *, limit: int) -> Listing:
    """The newest items by publication date."""
    return _listing(session, list_items(session, limit=limit, newest_first=True))


def item_listing(session: Session, item_id: int) -> Listing:
    """One item; NotFoundError when there is no such item."""
    return _listing(session, [get_item(session, item_id)])


def _last_sent(session: Session) -> dict[int, tuple[datetime | None, PostRef | None]]:
    newest = (select(Post.channel_id, func.max(Post.id).label("post_id"))
              .where(Post.state == SENT).group_by(Post.channel_id).subquery())
    rows = session.execute(
        select(Post.channel_id, Post.sent_at, Post.message_id, Channel.name, Channel.chat_id)
        .join(newest, newest.c.post_id == Post.id)
        .join(Channel, Channel.id == Post.channel_id)
    )
    last: dict[int, tuple[datetime | None, PostRef | None]] = {}
    for channel_id, sent_at, message_id, name, chat_id in rows:
        ref = PostRef(name, chat_id, int(message_id)) if message_id is not None else None
        last[channel_id] = (sent_at, ref)
    return last


def channel_summaries(session: Session) -> list[ChannelSummary]:
    """Every channel with its settings that matter day to day, its queue and its last post."""
    counts = queue_counts(session)
    last = _last_sent(session)
    summaries = []
    for channel in all_channels(session):
        settings = settings_of(channel)
        sent_at: datetime | None = None
        ref: PostRef | None = None
        if channel.id in last:
            sent_at, ref = last[channel.id]
        summaries.append(ChannelSummary(
            name=channel.name, chat_id=channel.chat_id, paused=channel.paused,
            paused_reason=channel.paused_reason, schedule=list(settings.schedule), timezone=settings.timezone,
            mode=settings.mode, per_slot=settings.per_slot,
            waiting=sum(counts.get((channel.id, state), 0) for state in WAITING_STATES),
            sent=counts.get((channel.id, SENT), 0), last_post=ref, last_sent_at=sent_at,
        ))
    return summaries


def queue_preview(session: Session, name: str, *, limit: int = 5) -> QueuePreview:
    """The channel's next items and its next slot rendered as posts; nothing is planned or advanced."""
    channel = get_channel(session, name)
    settings = settings_of(channel)
    upcoming = due_items(session, channel, limit=max(limit, settings.per_slot), advance_cursor=False)
    views = item_views(session, upcoming)
    number = channel.digest_counter + 1 if settings.mode == "digest" else None
    next_slot = views[:settings.per_slot]
    posts = make_renderer()(next_slot, settings, number) if next_slot else []
    planned = session.scalar(
        select(func.count(Post.id)).where(Post.channel_id == channel.id, Post.state.in_(WAITING_STATES))
    ) or 0
    return QueuePreview(channel=channel.name, paused=channel.paused, planned=planned, upcoming=views[:limit],
                        next_posts=posts)


def delivery_stats(session: Session) -> DeliveryStats:
    """Totals over every channel: items stored, posts by state, 429s received, the channels."""
    totals: dict[str, int] = {}
    for (_channel, state), count in queue_counts(session).items():
        totals[state] = totals.get(state, 0) + count
    return DeliveryStats(
        items=count_items(session), sent=totals.get(SENT, 0),
        waiting=sum(totals.get(state, 0) for state in WAITING_STATES),
        failed=totals.get(FAILED, 0), uncertain=totals.get(UNCERTAIN, 0),
        flood_waits=read_counter(session, "flood_waits"), channels=channel_summaries(session),
    )


def channel_names(session: Session) -> list[str]:
    return [channel.name for channel in all_channels(session)]


def posts_by_id(session: Session, post_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """post id -> (state, channel name), for reporting what a /postnow did."""
    if not post_ids:
        return {}
    rows = session.execute(select(Post.id, Post.state, Channel.name).join(Channel, Channel.id == Post.channel_id)
                           .where(Post.id.in_(list(post_ids))))
    return {post_id: (state, name) for post_id, state, name in rows}


@dataclass(slots=True)
class ProblemPost:
    id: int
    channel: str
    state: str
    item_ids: list[int]
    attempts: int
    error: str | None
    html: str


def problem_posts(session: Session, *, limit: int = 10) -> tuple[list[ProblemPost], int]:
    """Uncertain and failed posts waiting for an admin's word (oldest first), and how many there are."""
    names = {channel.id: channel.name for channel in all_channels(session)}
    waiting = (UNCERTAIN, FAILED)
    total = session.scalar(select(func.count(Post.id)).where(Post.state.in_(waiting))) or 0
    posts = session.scalars(select(Post).where(Post.state.in_(waiting)).order_by(Post.id).limit(limit))
    return [ProblemPost(id=post.id, channel=names.get(post.channel_id, "?"), state=post.state,
                        item_ids=[int(i) for i in post.item_ids], attempts=post.attempts, error=post.error,
                        html=post.html) for post in posts], total


def channel_settings(session: Session, name: str) -> tuple[ChannelConfig, bool, str | None]:
    """A channel's effective settings, whether it is paused and why; NotFoundError names the channels."""
    channel = get_channel(session, name)
    return settings_of(channel), channel.paused, channel.paused_reason


def check_post_targets(session: Session, name: str, item_ids: Sequence[int]) -> bool:
    """Whether the channel is paused; NotFoundError unless it and every item exist (before a /postnow)."""
    channel = get_channel(session, name)
    for item_id in item_ids:
        get_item(session, item_id)
    return channel.paused
