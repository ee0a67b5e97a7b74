"""SQLAlchemy models: documents, items and their sources, channels, posts and deliveries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from digests.clock import utcnow
from digests.states import (  # noqa: F401  (store code imports the states from here too)
    DRY_RUN,
    FAILED,
    PENDING,
    POST_STATES,
    RETRY,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend: stored as UTC, returned as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)




class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Document(Base):
    """One file of the archive, as last ingested."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    format: Mapped[str | None] = mapped_column(String(32))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Item(Base):
    """One news item; a cross-source duplicate is stored once with several ItemSource rows."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    links: Mapped[list[Any]] = mapped_column(default=list)
    summary: Mapped[str] = mapped_column(Text, default="")
    commentary: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(256), default="")
    published_at: Mapped[datetime | None] = mapped_column()
    # published_at, or when it was first stored for undated items: the key channels order by.
    sort_at: Mapped[datetime] = mapped_column(default=utcnow)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    category: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(16), default="news")
    author: Mapped[str] = mapped_column(String(256), default="")
    format: Mapped[str] = mapped_column(String(32), default="")
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    document: Mapped[Document | None] = relationship(lazy="raise")

    __table_args__ = (
        Index("ix_items_sort", "sort_at", "id"),
        Index("ix_items_created", "created_at"),
        Index("ix_items_updated", "updated_at"),
    )


class ItemSource(Base):
    """Where an item was read: (document, key within that document); the re-ingest anchor."""

    __tablename__ = "item_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(256))

    __table_args__ = (UniqueConstraint("document_id", "key", name="uq_item_sources_document_key"),)


class Commentary(Base):
    """An editor's or a commentator plugin's take on an item, with who wrote it and when."""

    __tablename__ = "commentaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(256))
    origin: Mapped[str] = mapped_column(String(16), default="editor")  # editor | plugin
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_commentaries_created", "created_at"),)


class Channel(Base):
    """A Telegram chat posted to, its name and settings; the database copy is what runs.

    The row is the chat (chat_key), not the name: a renamed channel keeps its row, its history
    and its admins' overrides. A channel no longer in config.yaml is retired, never deleted.
    """

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Not unique: a retired channel may keep a name that config.yaml now gives another chat.
    name: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(128))  # as configured: where posts are sent
    # The identity (digests.chats.chat_key); NULL only for a row that lost it to another (migration 0008).
    chat_key: Mapped[str | None] = mapped_column(String(128))
    retired_at: Mapped[datetime | None] = mapped_column()
    retired_by: Mapped[str | None] = mapped_column(String(128))  # "config" when it left config.yaml
    retired_reason: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    digest_counter: Mapped[int] = mapped_column(Integer, default=0)
    backlog_from: Mapped[datetime | None] = mapped_column()
    # Where the last selection stopped in the channel's order, and when: selection reads
    # forward from the cursor, plus whatever was ingested since, instead of the whole history.
    selection_cursor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    selected_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("chat_key", name="uq_channels_chat_key"),
        Index("ix_channels_name", "name"),
    )


class Post(Base):
    """One message for one channel and its delivery state (DESIGN.md "Delivery state")."""

    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    mode: Mapped[str] = mapped_column(String(16), default="single")
    html: Mapped[str] = mapped_column(Text)
    photo: Mapped[str | None] = mapped_column(Text)
    item_ids: Mapped[list[Any]] = mapped_column(default=list)
    part: Mapped[int] = mapped_column(Integer, default=1)
    digest_number: Mapped[int | None] = mapped_column(Integer)
    slot_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    worker: Mapped[str | None] = mapped_column(String(128))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime | None] = mapped_column()
    plain_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What the channel message shows once sent and edited (digests.store.edits): html and photo
    # follow each completed edit; content_hash is theirs (None: not computed since planning).
    content_hash: Mapped[str | None] = mapped_column(String(64))
    edit_count: Mapped[int] = mapped_column(Integer, default=0)
    last_edit_at: Mapped[datetime | None] = mapped_column()
    edit_state: Mapped[str | None] = mapped_column(String(16))  # the newest edit's state
    edit_error: Mapped[str | None] = mapped_column(Text)
    # The newest change of its items (or their commentary) this post was checked against.
    checked_at: Mapped[datetime | None] = mapped_column()

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="post", lazy="selectin")

    __table_args__ = (
        Index("ix_posts_state", "state", "id"),
        Index("ix_posts_channel_state", "channel_id", "state", "id"),
        Index("ix_posts_channel_slot", "channel_id", "slot_at"),
    )


class Delivery(Base):
    """An item scheduled into a post for a channel; unique, so an item reaches a channel once."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    post: Mapped[Post | None] = relationship(back_populates="deliveries", lazy="selectin")

    __table_args__ = (
        UniqueConstraint("channel_id", "item_id", name="uq_deliveries_channel_item"),
        Index("ix_deliveries_item", "item_id"),
    )


class PostEdit(Base):
    """An edit (or deletion) of a sent post's message: the outbox row, like a post's own send."""

    __tablename__ = "post_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16), default="edit")  # edit | delete
    html: Mapped[str | None] = mapped_column(Text)
    photo: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    worker: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_post_edits_state", "state", "id"),
        Index("ix_post_edits_post", "post_id", "id"),
    )


class AuditEntry(Base):
    """Who changed what, when: every admin action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The channel acted on, whatever it was called then: its log follows it through renames.
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"), index=True)


class KeyValue(Base):
    """Small persistent counters and flags (429s received, last ingest run ...)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)


class UserPref(Base):
    """A Telegram user's own choices (today the language of the bot's replies, set with /lang)."""

    __tablename__ = "user_prefs"

    # Telegram user ids pass 2**31; never a sequence: the id is Telegram's.
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    language: Mapped[str] = mapped_column(String(16))


class SourceState(Base):
    """A source the archive follows (from config, OPML or the command line) and its health."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # path | http | git
    location: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(16), default="config")  # config | opml | cli
    interval_seconds: Mapped[int | None] = mapped_column(Integer)  # None: only when asked
    select: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set when switched off (after too many failures in a row, or by an admin); cleared by enable.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    last_status: Mapped[str | None] = mapped_column(String(16))  # ok | unchanged | partial | failed
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    items_added: Mapped[int] = mapped_column(Integer, default=0)  # by the last refresh
    items_total: Mapped[int] = mapped_column(Integer, default=0)  # by every refresh
    git_commit: Mapped[str | None] = mapped_column(String(64))
    git_branch: Mapped[str | None] = mapped_column(String(255))
    last_fetch_at: Mapped[datetime | None] = mapped_column()
    last_change_at: Mapped[datetime | None] = mapped_column()
    next_fetch_at: Mapped[datetime | None] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_sources_next_fetch", "next_fetch_at"),)


class SourceFile(Base):
    """A file of a local folder source as last seen: a rescan parses only what changed."""

    __tablename__ = "source_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("source_id", "path", name="uq_source_files_source_path"),)


class SendWindow(Base):
    """One row per bot: every worker's reservation in the shared send windows locks it first."""

    __tablename__ = "send_windows"

    bot_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    touched_at: Mapped[datetime] = mapped_column()
    pruned_at: Mapped[datetime] = mapped_column()


class SendReservation(Base):
    """One request let through the send windows, by any worker: it counts until its ``*_until``."""

    __tablename__ = "send_reservations"

    # BIGINT on PostgreSQL (30 a second outgrows 2**31 in a few years); SQLite's rowid is 64-bit.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bot_key: Mapped[str] = mapped_column(String(64))
    chat: Mapped[str | None] = mapped_column(String(128))  # None: counted in the global window only
    reserved_at: Mapped[datetime] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column()
    chat_until: Mapped[datetime | None] = mapped_column()
    overall_until: Mapped[datetime] = mapped_column()

    __table_args__ = (
        Index("ix_send_reservations_chat", "bot_key", "chat", "chat_until"),
        Index("ix_send_reservations_overall", "bot_key", "overall_until"),
    )
