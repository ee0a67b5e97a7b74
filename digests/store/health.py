"""The facts the health check decides on, read from the database; and the scheduler's heartbeats."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import case, delete, func, inspect, select, text, type_coerce
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from digests.errors import DigestError
from digests.health import ChannelFacts, HealthFacts
from digests.store.db import Database
from digests.store.models import (
    PENDING,
    RETRY,
    SENDING,
    SENT,
    AuditEntry,
    Channel,
    KeyValue,
    Post,
    UTCDateTime,
)
from digests.store.revisions import head_revision

HEARTBEAT_PREFIX = "heartbeat:"
_FORGET_AFTER = timedelta(days=1)  # heartbeats of processes gone this long are dropped


class DatabaseUnavailable(DigestError):
    """The database did not answer (down, unreachable, locked past the timeout, no such file)."""


def database_error(exc: BaseException) -> str:
    """The driver's first line of an error, without the SQL or the URL (a password may be in it)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{orig.__class__.__name__}: {text[0]}" if text else orig.__class__.__name__


def sqlite_file_missing(url: str) -> str | None:
    """The path of a SQLite database file that does not exist (opening it would create it), else None."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database).expanduser()
    return None if path.is_file() else str(path)


@contextmanager
def answering(db: Database) -> Iterator[None]:
    """Turn the driver's errors into DatabaseUnavailable, with a message fit for a log line."""
    missing = sqlite_file_missing(db.url)
    if missing is not None:
        raise DatabaseUnavailable(f"no database file at {missing}")
    try:
        yield
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(database_error(exc)) from None


def read_health_facts(db: Database) -> HealthFacts:
    """Everything digests.health.decide needs; a database that does not answer is a fact too."""
    try:
        with answering(db), db.session() as session:
            head = head_revision()
            if not inspect(session.connection()).has_table("alembic_version"):
                return HealthFacts(revision=None, head_revision=head)
            # Read directly: alembic's MigrationContext logs two INFO lines each time.
            revision = session.scalar(text("SELECT version_num FROM alembic_version"))
            beats = {
                key.removeprefix(HEARTBEAT_PREFIX): datetime.fromisoformat(value["at"])
                for key, value in session.execute(
                    select(KeyValue.key, KeyValue.value).where(KeyValue.key.startswith(HEARTBEAT_PREFIX)))
                if isinstance(value, dict) and value.get("at")
            }
            # A post in flight waits from when its lease ran out; any other from when it was planned.
            since = case((Post.state == SENDING, Post.lease_until), else_=Post.created_at)
            waiting = {
                channel_id: (oldest, first_post)
                for channel_id, oldest, first_post in session.execute(
                    select(Post.channel_id, func.min(type_coerce(since, UTCDateTime())), func.min(Post.id))
                    .where(Post.state.in_((PENDING, RETRY, SENDING))).group_by(Post.channel_id))
            }
            last_sent = {channel_id: moment for channel_id, moment in session.execute(
                select(Post.channel_id, func.max(Post.sent_at)).where(Post.state == SENT).group_by(Post.channel_id))}
            channels = []
            for channel in session.scalars(select(Channel).order_by(Channel.name)):
                by_error = False
                if channel.paused:
                    # The publisher pauses a channel only when Telegram refused it; admins pause on purpose.
                    by_error = session.scalar(
                        select(AuditEntry.actor).where(AuditEntry.action == "pause",
                                                       AuditEntry.target == f"channel:{channel.name}")
                        .order_by(AuditEntry.id.desc()).limit(1)) == "publisher"
                oldest, first_post = waiting.get(channel.id, (None, None))
                error = session.scalar(select(Post.error).where(Post.id == first_post)) if first_post else None
                channels.append(ChannelFacts(
                    name=channel.name, paused=channel.paused, paused_by_error=by_error,
                    paused_reason=channel.paused_reason, waiting_since=oldest, first_waiting=first_post,
                    first_error=error, last_sent_at=last_sent.get(channel.id)))
    except DatabaseUnavailable as exc:
        return HealthFacts(database_error=str(exc))
    return HealthFacts(revision=revision, head_revision=head, heartbeats=beats, channels=channels)


def beat(db: Database, worker: str, now: datetime) -> None:
    """This worker's scheduler ran now; heartbeats of processes long gone are dropped."""
    with answering(db), db.session() as session:
        row = session.get(KeyValue, HEARTBEAT_PREFIX + worker)
        if row is None:
            session.add(KeyValue(key=HEARTBEAT_PREFIX + worker, value={"at": now.isoformat()}))
            for key, value in session.execute(
                    select(KeyValue.key, KeyValue.value).where(KeyValue.key.startswith(HEARTBEAT_PREFIX))):
                at = value.get("at") if isinstance(value, dict) else None
                if at is None or now - datetime.fromisoformat(at) > _FORGET_AFTER:
                    session.execute(delete(KeyValue).where(KeyValue.key == key))
        else:
            row.value = {"at": now.isoformat()}


def forget(db: Database, worker: str) -> None:
    """A worker stopping cleanly takes its heartbeat with it."""
    with answering(db), db.session() as session:
        session.execute(delete(KeyValue).where(KeyValue.key == HEARTBEAT_PREFIX + worker))


def live_workers(db: Database, now: datetime, within: timedelta) -> dict[str, datetime]:
    """Workers whose heartbeat is newer than ``within`` (a restore refuses while one runs)."""
    with db.session() as session:
        rows = session.execute(
            select(KeyValue.key, KeyValue.value).where(KeyValue.key.startswith(HEARTBEAT_PREFIX)))
        beats = {key.removeprefix(HEARTBEAT_PREFIX): datetime.fromisoformat(value["at"])
                 for key, value in rows if isinstance(value, dict) and value.get("at")}
    return {worker: at for worker, at in beats.items() if now - at <= within}
