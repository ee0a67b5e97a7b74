"""Source rows: what each source is, its health, and the lease that lets one worker at a time refresh it.

A lease is a conditional UPDATE (taken only when free or expired), so it works the same on
SQLite and PostgreSQL and across processes; a worker that dies leaves a lease that simply expires.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from digests.errors import NotFoundError
from digests.store.models import SourceFile, SourceState

CONFIG, OPML, CLI = "config", "opml", "cli"


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """What config, an OPML file or the command line say a source is."""

    name: str
    kind: str
    location: str
    interval_seconds: int | None
    select: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    enabled: bool = True
    origin: str = CONFIG


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A source row as read: its settings and health."""

    id: int
    name: str
    kind: str
    location: str
    origin: str
    interval_seconds: int | None
    select: list[str]
    tags: list[str]
    enabled: bool
    disabled_reason: str | None
    etag: str | None
    last_modified: str | None
    http_status: int | None
    last_status: str | None
    last_error: str | None
    consecutive_failures: int
    items_added: int
    items_total: int
    git_commit: str | None
    git_branch: str | None
    last_fetch_at: datetime | None
    last_change_at: datetime | None
    next_fetch_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """What one refresh found, to be written back to the source's row."""

    fetched_at: datetime
    status: str  # ok | unchanged | partial | failed | waiting
    next_fetch_at: datetime | None
    consecutive_failures: int
    error: str | None = None
    http_status: int | None = None
    items_added: int = 0
    changed: bool = False
    disabled_reason: str | None = None  # set: the source is switched off from now on
    validators: tuple[str | None, str | None] | None = None  # (etag, last_modified) to keep
    git: tuple[str, str] | None = None  # (commit, branch) now ingested


_RECORD_FIELDS = [f.name for f in fields(SourceRecord)]


def _record(row: SourceState) -> SourceRecord:
    values = {name: getattr(row, name) for name in _RECORD_FIELDS}
    values["select"], values["tags"] = list(row.select or []), list(row.tags or [])
    return SourceRecord(**values)


def _row(session: Session, name: str) -> SourceState:
    row = session.scalars(select(SourceState).where(SourceState.name == name)).one_or_none()
    if row is None:
        raise NotFoundError(f"no source named {name!r} (digestbot sources lists them)", what="source", name=name)
    return row


def _apply(row: SourceState, settings: SourceSettings, now: datetime) -> None:
    if row.location != settings.location or row.kind != settings.kind:
        # Another place altogether: what we knew of the old one means nothing here.
        row.etag = row.last_modified = row.git_commit = row.git_branch = None
        row.consecutive_failures = 0
        row.disabled_reason = None
        row.next_fetch_at = None
    row.kind, row.location, row.origin = settings.kind, settings.location, settings.origin
    row.interval_seconds = settings.interval_seconds
    row.select, row.tags, row.enabled = list(settings.select), list(settings.tags), settings.enabled
    row.updated_at = now


def sync_configured(session: Session, configured: Iterable[SourceSettings], now: datetime) -> None:
    """Make the rows of config's sources match config; config sources no longer listed are dropped."""
    wanted = {settings.name: settings for settings in configured}
    rows = {row.name: row for row in session.scalars(select(SourceState))}
    for name, settings in wanted.items():
        row = rows.get(name)
        if row is None:
            session.add(SourceState(name=name, created_at=now, consecutive_failures=0, items_added=0,
                                    items_total=0, **_new_fields(settings, now)))
        elif _differs(row, settings):
            _apply(row, settings, now)
    for name, row in rows.items():
        if row.origin == CONFIG and name not in wanted:
            session.delete(row)


def _new_fields(settings: SourceSettings, now: datetime) -> dict[str, Any]:
    return {"kind": settings.kind, "location": settings.location, "origin": settings.origin,
            "interval_seconds": settings.interval_seconds, "select": list(settings.select),
            "tags": list(settings.tags), "enabled": settings.enabled, "updated_at": now}


def _differs(row: SourceState, settings: SourceSettings) -> bool:
    return (row.kind, row.location, row.origin, row.interval_seconds, list(row.select or []),
            list(row.tags or []), row.enabled) != (settings.kind, settings.location, settings.origin,
                                                   settings.interval_seconds, list(settings.select),
                                                   list(settings.tags), settings.enabled)


def add_source(session: Session, settings: SourceSettings, now: datetime) -> tuple[SourceRecord, bool]:
    """The source of this name, added when new (True) or left as it is when it exists (False)."""
    row = session.scalars(select(SourceState).where(SourceState.name == settings.name)).one_or_none()
    if row is not None:
        return _record(row), False
    row = SourceState(name=settings.name, created_at=now, consecutive_failures=0, items_added=0, items_total=0,
                      **_new_fields(settings, now))
    session.add(row)
    session.flush()
    return _record(row), True


def source_at(session: Session, location: str) -> SourceRecord | None:
    """The source that follows this location, if any (config's first)."""
    rows = session.scalars(select(SourceState).where(SourceState.location == location)
                           .order_by(SourceState.origin != CONFIG, SourceState.id))
    row = rows.first()
    return _record(row) if row is not None else None


def get_source(session: Session, name: str) -> SourceRecord:
    return _record(_row(session, name))


def list_sources(session: Session) -> list[SourceRecord]:
    return [_record(row) for row in session.scalars(select(SourceState).order_by(SourceState.name))]


def has_scheduled_sources(session: Session) -> bool:
    """True when some source has an interval (so `run` has something to keep in step)."""
    return session.scalar(select(SourceState.id).where(SourceState.interval_seconds.is_not(None)).limit(1)) is not None


def due_sources(session: Session, now: datetime) -> list[SourceRecord]:
    """Sources to refresh now: on, scheduled, their time come, nobody else's lease on them."""
    rows = session.scalars(
        select(SourceState).where(
            SourceState.enabled.is_(True), SourceState.disabled_reason.is_(None),
            SourceState.interval_seconds.is_not(None),
            or_(SourceState.next_fetch_at.is_(None), SourceState.next_fetch_at <= now),
            or_(SourceState.lease_until.is_(None), SourceState.lease_until < now),
        ).order_by(SourceState.next_fetch_at.is_not(None), SourceState.next_fetch_at, SourceState.id)
    )
    return [_record(row) for row in rows]


def claim_sources(session: Session, names: Sequence[str], owner: str, now: datetime,
                  lease_seconds: float) -> list[SourceRecord]:
    """Take the leases of these sources where free or expired; the rows of those now ours, in order.

    One UPDATE for them all: on PostgreSQL a row another worker claims at the same moment is
    waited for and then seen as taken, so each source goes to exactly one worker. ``owner`` must
    be unique to the caller (host, process and a random part).
    """
    order = {name: index for index, name in enumerate(names)}
    wanted = sorted(order)
    ours: list[SourceState] = []
    for offset in range(0, len(wanted), 500):
        chunk = wanted[offset:offset + 500]
        session.execute(
            update(SourceState)
            .where(SourceState.name.in_(chunk),
                   or_(SourceState.lease_until.is_(None), SourceState.lease_until < now))
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
        )
        ours += session.scalars(select(SourceState).where(SourceState.name.in_(chunk),
                                                          SourceState.lease_owner == owner))
    return [_record(row) for row in sorted(ours, key=lambda row: order[row.name])]


def renew_lease(session: Session, name: str, owner: str, now: datetime, lease_seconds: float) -> bool:
    """Extend a lease we hold (a long ingest); False when it was lost meanwhile."""
    result = session.execute(
        update(SourceState).where(SourceState.name == name, SourceState.lease_owner == owner)
        .values(lease_until=now + timedelta(seconds=lease_seconds))
    )
    return cast(CursorResult[Any], result).rowcount == 1


def record_refreshes(session: Session, owner: str, outcomes: Collection[tuple[str, RefreshRecord]]) -> None:
    """Write refreshes' outcomes to their sources' rows and give up the leases."""
    names = sorted({name for name, _ in outcomes})
    rows: dict[str, SourceState] = {}
    for offset in range(0, len(names), 500):
        rows.update((row.name, row) for row in session.scalars(
            select(SourceState).where(SourceState.name.in_(names[offset:offset + 500]))))
    for name, record in outcomes:
        row = rows.get(name)
        if row is not None:
            _write_refresh(row, owner, record)


def _write_refresh(row: SourceState, owner: str, record: RefreshRecord) -> None:
    row.last_fetch_at = record.fetched_at
    row.last_status = record.status
    row.last_error = record.error
    row.http_status = record.http_status
    row.consecutive_failures = record.consecutive_failures
    row.next_fetch_at = record.next_fetch_at
    row.items_added = record.items_added
    row.items_total = (row.items_total or 0) + record.items_added
    if record.changed:
        row.last_change_at = record.fetched_at
    if record.validators is not None:
        row.etag, row.last_modified = record.validators
    if record.git is not None:
        row.git_commit, row.git_branch = record.git
    if record.disabled_reason is not None:
        row.disabled_reason = record.disabled_reason
    if row.lease_owner == owner:
        row.lease_owner, row.lease_until = None, None
    row.updated_at = record.fetched_at


def release_lease(session: Session, name: str, owner: str) -> None:
    session.execute(update(SourceState).where(SourceState.name == name, SourceState.lease_owner == owner)
                    .values(lease_owner=None, lease_until=None))


def set_switched_off(session: Session, name: str, reason: str | None, now: datetime) -> SourceRecord:
    """Switch a source off (reason given) or on again (None: failures forgotten, fetched at once)."""
    row = _row(session, name)
    row.disabled_reason = reason
    if reason is None:
        row.consecutive_failures = 0
        row.next_fetch_at = now
    row.updated_at = now
    return _record(row)


def request_refresh(session: Session, name: str, now: datetime) -> SourceRecord:
    """Make the source due now (the running bot picks it up within a poll)."""
    row = _row(session, name)
    row.next_fetch_at = now
    row.updated_at = now
    return _record(row)


def delete_source(session: Session, name: str) -> None:
    """Forget a source (its documents and items stay in the archive)."""
    session.delete(_row(session, name))


def file_stats(session: Session, source_id: int) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of a folder source's files as last ingested."""
    rows = session.execute(select(SourceFile.path, SourceFile.size, SourceFile.mtime_ns)
                           .where(SourceFile.source_id == source_id))
    return {path: (size, mtime_ns) for path, size, mtime_ns in rows}


def save_file_stats(session: Session, source_id: int, changed: dict[str, tuple[int, int]],
                    gone: Collection[str]) -> None:
    """Remember the files just ingested and forget the ones that disappeared."""
    stale = sorted({*changed, *gone})
    for offset in range(0, len(stale), 500):
        session.execute(delete(SourceFile).where(SourceFile.source_id == source_id,
                                                 SourceFile.path.in_(stale[offset:offset + 500])))
    if changed:
        session.execute(insert(SourceFile), [
            {"source_id": source_id, "path": path, "size": size, "mtime_ns": mtime}
            for path, (size, mtime) in changed.items()
        ])
