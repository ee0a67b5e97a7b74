"""Read models: what the bot's commands and the CLI show (listings, channel overviews, queue previews, stats).

Each function is one read transaction on the Database; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from digests.channels import settings_of
from digests.config import ChannelConfig
from digests.errors import NotFoundError
from digests.formatting.render import RenderedPost, make_renderer
from digests.items import ItemView
from digests.publishing.due import due_items
from digests.publishing.selection import group_for_posts
from digests.states import FAILED, RETRY, SENT, UNCERTAIN, WAITING_STATES
from digests.store import search
from digests.store.channels import active_channels, all_channels, get_channel
from digests.store.db import Database
from digests.store.edits import edits_waiting
from digests.store.items import count_items, get_item, item_views, list_items
from digests.store.post_reads import count_posts, has_posts, last_sent_posts, post_states, sent_posts_of_items
from digests.store.posts import list_posts, post_json, queue_counts, read_counter
from digests.store.prefs import user_languages as stored_languages

if TYPE_CHECKING:
    from digests.store.models import Channel, Item, Post

PROBLEM_STATES = (UNCERTAIN, FAILED)  # posts that wait for an admin's word


@dataclass(frozen=True, slots=True)
class PostRef:
    """A sent message that holds an item: the channel's name and chat id, and the message id."""

    channel: str
    chat_id: str
    message_id: int


@dataclass(slots=True)
class Listing:
    """Items to show a subscriber, with the channel messages that hold them."""

    views: list[ItemView]
    posts: dict[int, list[PostRef]]
    has_more: bool = False
    total: int | None = None  # all matches of a search, when counted


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
    failed: int
    uncertain: int
    last_post: PostRef | None  # the most recently sent message
    last_sent_at: datetime | None
    retired_reason: str | None = None  # set when the channel is retired: it posts nothing


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


@dataclass(slots=True)
class ProblemPost:
    id: int
    channel: str
    state: str
    item_ids: list[int]
    attempts: int
    error: str | None
    html: str


# ---------------------------------------------------------------------------------------------
# Items


def _listing(views: list[ItemView], sent: Sequence[tuple[int, str, str, int]], has_more: bool = False,
             total: int | None = None) -> Listing:
    refs: dict[int, list[PostRef]] = {}
    for item_id, name, chat_id, message_id in sent:
        refs.setdefault(item_id, []).append(PostRef(name, chat_id, message_id))
    return Listing(views, refs, has_more, total)


def search_listing(db: Database, query: str, *, limit: int, offset: int = 0) -> Listing:
    """One page of search results."""
    with db.session() as session:
        page = search.search_items(session, query, limit=limit, offset=offset)
        views = item_views(session, page.results)
        sent = sent_posts_of_items(session, [view.id for view in views])
    return _listing(views, sent, page.has_more, page.total)


def latest_listing(db: Database, *, limit: int) -> Listing:
    """The newest items by publication date."""
    with db.session() as session:
        views = item_views(session, list_items(session, limit=limit, newest_first=True))
        sent = sent_posts_of_items(session, [view.id for view in views])
    return _listing(views, sent)


def item_listing(db: Database, item_id: int) -> Listing:
    """One item; NotFoundError when there is no such item."""
    with db.session() as session:
        views = item_views(session, [get_item(session, item_id)])
        sent = sent_posts_of_items(session, [item_id])
    return _listing(views, sent)


def stored_items(db: Database, *, limit: int | None = None, newest_first: bool = False) -> list[ItemView]:
    """The stored items, in storage order or newest first."""
    with db.session() as session:
        return item_views(session, list_items(session, limit=limit, newest_first=newest_first))


# ---------------------------------------------------------------------------------------------
# Channels and their queues


def _summaries(channels: Sequence[Channel], counts: Mapping[tuple[int, str], int],
               last: Mapping[int, Post]) -> list[ChannelSummary]:
    summaries = []
    for channel in channels:
        settings = settings_of(channel)
        post = last.get(channel.id)
        ref = None
        if post is not None and post.message_id is not None:
            ref = PostRef(channel.name, channel.chat_id, int(post.message_id))
        summaries.append(ChannelSummary(
            name=channel.name, chat_id=channel.chat_id, paused=channel.paused,
            paused_reason=channel.paused_reason, schedule=list(settings.schedule), timezone=settings.timezone,
            mode=settings.mode, per_slot=settings.per_slot,
            waiting=sum(counts.get((channel.id, state), 0) for state in WAITING_STATES),
            sent=counts.get((channel.id, SENT), 0), failed=counts.get((channel.id, FAILED), 0),
            uncertain=counts.get((channel.id, UNCERTAIN), 0), last_post=ref,
            last_sent_at=post.sent_at if post is not None else None,
            retired_reason=channel.retired_reason if channel.retired_at is not None else None,
        ))
    return summaries


def channel_summaries(db: Database) -> list[ChannelSummary]:
    """Every channel with its settings that matter day to day, its queue and its last post."""
    with db.session() as session:
        return _summaries(all_channels(session), queue_counts(session), last_sent_posts(session))


def delivery_stats(db: Database) -> DeliveryStats:
    """Totals over every channel: items stored, posts by state, 429s received, the channels."""
    with db.session() as session:
        counts = queue_counts(session)
        channels = _summaries(all_channels(session), counts, last_sent_posts(session))
        items, flood_waits = count_items(session), read_counter(session, "flood_waits")
    totals: dict[str, int] = {}
    for (_channel, state), count in counts.items():
        totals[state] = totals.get(state, 0) + count
    return DeliveryStats(
        items=items, sent=totals.get(SENT, 0), waiting=sum(totals.get(state, 0) for state in WAITING_STATES),
        failed=totals.get(FAILED, 0), uncertain=totals.get(UNCERTAIN, 0), flood_waits=flood_waits,
        channels=channels,
    )


def channel_names(db: Database) -> list[str]:
    with db.session() as session:
        return [channel.name for channel in active_channels(session)]


def channel_settings(db: Database, name: str) -> tuple[ChannelConfig, bool, str | None]:
    """A channel's effective settings, whether it is paused and why; NotFoundError names the channels."""
    with db.session() as session:
        channel = get_channel(session, name)
        return settings_of(channel), channel.paused, channel.paused_reason


def _slot_posts(items: Sequence[Item], views: Sequence[ItemView], settings: ChannelConfig,
                number: int | None) -> list[RenderedPost]:
    """The posts these items make in one slot, grouped as planning groups them."""
    by_id = {view.id: view for view in views}
    render = make_renderer()
    return [post for group in group_for_posts(items, settings)
            for post in render([by_id[item.id] for item in group], settings, number)]


def _digest_number(channel: Channel, settings: ChannelConfig) -> int | None:
    return channel.digest_counter + 1 if settings.mode == "digest" else None


def slot_preview(db: Database, name: str, *, limit: int | None = None) -> list[RenderedPost]:
    """The posts of the channel's next slot, or its next `limit` posts; nothing is planned or advanced.

    Posts are made slot by slot, per_slot items each, grouped and numbered as planning will, so
    each is the whole message that will be sent (never a digest of only the first `limit` items).
    """
    with db.session() as session:
        channel = get_channel(session, name)
        settings = settings_of(channel)
        per_slot = settings.per_slot
        # A slot makes at least one post: `limit` slots always hold `limit` posts.
        wanted = per_slot if limit is None else limit * (per_slot if settings.mode == "digest" else 1)
        items = due_items(session, channel, limit=wanted)
        views = item_views(session, items)
        number = _digest_number(channel, settings)
    shown: list[RenderedPost] = []
    for slot, start in enumerate(range(0, len(items), per_slot)):
        shown += _slot_posts(items[start:start + per_slot], views, settings,
                             None if number is None else number + slot)
        if limit is None or len(shown) >= limit:
            break
    return shown if limit is None else shown[:limit]


def queue_preview(db: Database, name: str, *, limit: int = 5) -> QueuePreview:
    """The channel's next items and its next slot rendered as posts; nothing is planned or advanced."""
    with db.session() as session:
        channel = get_channel(session, name)
        settings = settings_of(channel)
        upcoming = due_items(session, channel, limit=max(limit, settings.per_slot), advance_cursor=False)
        views = item_views(session, upcoming)
        number = _digest_number(channel, settings)
        planned = count_posts(session, WAITING_STATES, channel_id=channel.id)
        shown, paused = channel.name, channel.paused
    next_posts = _slot_posts(upcoming[:settings.per_slot], views, settings, number)
    return QueuePreview(channel=shown, paused=paused, planned=planned, upcoming=views[:limit],
                        next_posts=next_posts)


def check_post_targets(db: Database, name: str, item_ids: Sequence[int]) -> bool:
    """Whether the channel is paused; NotFoundError unless it is active and every item exists (before a /postnow)."""
    with db.session() as session:
        channel = get_channel(session, name)
        if channel.retired_at is not None:
            raise NotFoundError(f"channel {name!r} is retired ({channel.retired_reason}): it posts nothing",
                                what="retired channel", name=name, reason=channel.retired_reason)
        for item_id in item_ids:
            get_item(session, item_id)
        return channel.paused


# ---------------------------------------------------------------------------------------------
# Posts


def posts_by_id(db: Database, post_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """post id -> (state, channel name), for reporting what a /postnow did."""
    with db.session() as session:
        return post_states(session, post_ids)


def any_retrying(db: Database, names: Sequence[str]) -> bool:
    """Whether a post or an edit of these channels is still waiting to retry (flood control, transient errors)."""
    with db.session() as session:
        ids = [get_channel(session, name).id for name in names]
        return has_posts(session, ids, (RETRY,)) or edits_waiting(session, ids)


def problem_posts(db: Database, *, limit: int = 10) -> tuple[list[ProblemPost], int]:
    """Uncertain and failed posts waiting for an admin's word (oldest first), and how many there are."""
    with db.session() as session:
        names = {channel.id: channel.name for channel in all_channels(session)}
        total = count_posts(session, PROBLEM_STATES)
        posts = list_posts(session, states=PROBLEM_STATES, limit=limit)
        return [ProblemPost(id=post.id, channel=names.get(post.channel_id, "?"), state=post.state,
                            item_ids=[int(i) for i in post.item_ids], attempts=post.attempts, error=post.error,
                            html=post.html) for post in posts], total


def delivery_records(db: Database, *, states: Sequence[str] | None = None, channel: str | None = None,
                     limit: int | None = None) -> list[dict[str, Any]]:
    """Posts as `digestbot deliveries --json` prints them, oldest first; NotFoundError for an unknown channel."""
    with db.session() as session:
        names = {c.id: c.name for c in all_channels(session)}
        channel_id = get_channel(session, channel).id if channel else None
        posts = list_posts(session, states=states or None, channel_id=channel_id, limit=limit)
        return [post_json(post, names.get(post.channel_id, "?")) for post in posts]


def user_languages(db: Database, user_ids: Sequence[int]) -> dict[int, str]:
    """The language each of these Telegram users chose with /lang (users who chose none are left out)."""
    with db.session() as session:
        return stored_languages(session, user_ids)
