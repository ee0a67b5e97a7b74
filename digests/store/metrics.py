"""Counts for /metrics, read at scrape time: the same answer from every worker on one database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from digests.store.db import Database
from digests.store.health import answering
from digests.store.models import SENT, Channel, Document, Item, KeyValue, Post, PostEdit

UNKNOWN_FORMAT = "unknown"  # a document that failed before its format was recognised


@dataclass(slots=True)
class MetricCounts:
    posts: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, state) -> posts
    plain_fallbacks: dict[str, int] = field(default_factory=dict)  # channel -> sent as plain text
    last_sent_at: dict[str, datetime] = field(default_factory=dict)
    paused: dict[str, bool] = field(default_factory=dict)
    flood_waits: int = 0
    documents: dict[str, int] = field(default_factory=dict)  # format -> documents stored without error
    document_failures: dict[str, int] = field(default_factory=dict)  # format -> documents whose last read failed
    items: dict[str, int] = field(default_factory=dict)  # format -> items not removed
    edits: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (channel, action, state) -> edits


def read_metric_counts(db: Database) -> MetricCounts:
    """One transaction of GROUP BY counts (posts use the channel/state index); DatabaseUnavailable if down."""
    counts = MetricCounts()
    with answering(db), db.session() as session:
        names = {channel_id: name for channel_id, name in session.execute(select(Channel.id, Channel.name))}
        counts.paused = {name: bool(paused) for name, paused in session.execute(select(Channel.name, Channel.paused))}
        for channel_id, state, number in session.execute(
                select(Post.channel_id, Post.state, func.count()).group_by(Post.channel_id, Post.state)):
            counts.posts[(names.get(channel_id, str(channel_id)), state)] = number
        for channel_id, number in session.execute(
                select(Post.channel_id, func.count()).where(Post.state == SENT, Post.plain_fallback.is_(True))
                .group_by(Post.channel_id)):
            counts.plain_fallbacks[names.get(channel_id, str(channel_id))] = number
        for channel_id, moment in session.execute(
                select(Post.channel_id, func.max(Post.sent_at)).where(Post.state == SENT).group_by(Post.channel_id)):
            if moment is not None:
                counts.last_sent_at[names.get(channel_id, str(channel_id))] = moment
        row = session.get(KeyValue, "flood_waits")
        counts.flood_waits = int(row.value.get("count", 0)) if row is not None else 0
        for fmt, failed, number in session.execute(
                select(Document.format, Document.error.is_not(None), func.count())
                .group_by(Document.format, Document.error.is_not(None))):
            target = counts.document_failures if failed else counts.documents
            key = fmt or UNKNOWN_FORMAT
            target[key] = target.get(key, 0) + number
        for fmt, number in session.execute(
                select(Item.format, func.count()).where(Item.removed.is_(False)).group_by(Item.format)):
            counts.items[fmt or UNKNOWN_FORMAT] = number
        for channel_id, action, state, number in session.execute(
                select(PostEdit.channel_id, PostEdit.action, PostEdit.state, func.count())
                .group_by(PostEdit.channel_id, PostEdit.action, PostEdit.state)):
            counts.edits[(names.get(channel_id, str(channel_id)), action, state)] = number
    return counts
