"""Which sources exist (config, OPML, the command line), their health, and what admins do to them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from digests.errors import DigestError, ParseError
from digests.source_config import SourceConfig
from digests.source_locations import HTTP, parse_location, without_credentials
from digests.sources.opml import OpmlFeed, read_opml, write_opml
from digests.store.audit import audit
from digests.store.db import Database
from digests.store.sources import (
    CLI,
    CONFIG,
    OPML,
    SourceRecord,
    SourceSettings,
    add_source,
    delete_source,
    get_source,
    has_scheduled_sources,
    list_sources,
    request_refresh,
    set_switched_off,
    source_at,
    sync_configured,
)

_NAME_JUNK = re.compile(r"[^A-Za-z0-9._-]+")


def settings_of(source: SourceConfig) -> SourceSettings:
    location = source.location
    return SourceSettings(source.name, location.kind, location.text, source.interval_seconds, list(source.select),
                          list(source.tags), source.enabled, CONFIG)


def sync_config(db: Database, sources: Sequence[SourceConfig], now: datetime) -> None:
    """Config's sources into the database, where the running bot and every worker read them."""
    with db.session() as session:
        sync_configured(session, [settings_of(s) for s in sources], now)


def source_for(db: Database, text: str, now: datetime) -> SourceRecord:
    """The source following this location (a configured one when there is one), else a new one that
    is refreshed only when asked: its validators and commit are kept for the next time."""
    try:
        location = parse_location(text)
    except ValueError as exc:
        raise DigestError(str(exc)) from None
    with db.session() as session:
        known = source_at(session, location.text)
        if known is not None:
            return known
        record, _ = add_source(session, SourceSettings(location.text[:255], location.kind, location.text, None,
                                                       origin=CLI), now)
        return record


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One line of `digestbot sources` and /sources."""

    name: str
    kind: str
    location: str
    origin: str
    state: str  # ok | unchanged | partial | failed | waiting | never fetched | off | switched off
    last_fetch: datetime | None
    last_change: datetime | None
    http_status: int | None
    items_added: int
    items_total: int
    consecutive_failures: int
    next_fetch: datetime | None
    git_commit: str | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "location": self.location, "origin": self.origin,
                "state": self.state, "last_fetch": _iso(self.last_fetch), "last_change": _iso(self.last_change),
                "http_status": self.http_status, "items_added": self.items_added, "items_total": self.items_total,
                "consecutive_failures": self.consecutive_failures, "next_fetch": _iso(self.next_fetch),
                "git_commit": self.git_commit, "error": self.error}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _health(record: SourceRecord) -> SourceHealth:
    if not record.enabled:
        state, upcoming = "off", None
    elif record.disabled_reason:
        state, upcoming = "switched off", None
    else:
        state, upcoming = record.last_status or "never fetched", record.next_fetch_at
    error = record.disabled_reason or record.last_error
    return SourceHealth(record.name, record.kind, without_credentials(record.location), record.origin, state,
                        record.last_fetch_at, record.last_change_at, record.http_status, record.items_added,
                        record.items_total, record.consecutive_failures, upcoming, record.git_commit, error)


def source_health(db: Database) -> list[SourceHealth]:
    with db.session() as session:
        return [_health(record) for record in list_sources(session)]


def sources_summary(db: Database) -> dict[str, int]:
    """Counts for `stats`: sources, failing now, switched off, items they added."""
    health = source_health(db)
    return {"sources": len(health),
            "failing": sum(1 for h in health if h.state == "failed"),
            "switched_off": sum(1 for h in health if h.state == "switched off"),
            "items_added": sum(h.items_total for h in health)}


def switch_source(db: Database, name: str, *, on: bool, actor: str, now: datetime,
                  reason: str | None = None) -> SourceHealth:
    """Switch a source on again (failures forgotten, fetched at once) or off (until switched on)."""
    with db.session() as session:
        record = set_switched_off(session, name, None if on else (reason or f"switched off by {actor}"), now)
        audit(session, actor, "source_on" if on else "source_off", name, {"reason": reason} if reason else {},
              now=now)
        return _health(record)


def refresh_soon(db: Database, name: str, *, actor: str, now: datetime) -> SourceHealth:
    """Make a source due now: the running bot refreshes it within a poll."""
    with db.session() as session:
        record = request_refresh(session, name, now)
        audit(session, actor, "source_refresh", name, now=now)
        return _health(record)


def forget_source(db: Database, name: str, *, actor: str, now: datetime) -> None:
    """Stop following a source added by OPML or the command line (config's stay while configured)."""
    with db.session() as session:
        record = get_source(session, name)
        if record.origin == CONFIG:
            raise DigestError(f"source {name!r} comes from config.yaml: remove it there")
        delete_source(session, name)
        audit(session, actor, "source_remove", name, now=now)


def find_source(db: Database, name: str) -> SourceRecord:
    with db.session() as session:
        return get_source(session, name)


def records(db: Database, names: Sequence[str] = ()) -> list[SourceRecord]:
    """The named sources (NotFoundError for an unknown one), or every source that is on."""
    with db.session() as session:
        if names:
            return [get_source(session, name) for name in names]
        return [r for r in list_sources(session) if r.enabled and not r.disabled_reason]


# ---------------------------------------------------------------------------------------------
# OPML


def _name_for(feed: OpmlFeed, taken: set[str]) -> str:
    base = _NAME_JUNK.sub("-", feed.title).strip("-.")[:60]
    if not base:
        parts = urlsplit(feed.url)
        base = _NAME_JUNK.sub("-", f"{parts.hostname or 'feed'}{parts.path}").strip("-.")[:60] or "feed"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    taken.add(name)
    return name


def import_opml(db: Database, data: bytes, *, interval_seconds: int, actor: str,
                now: datetime) -> tuple[list[str], list[tuple[str, str]]]:
    """Follow every feed of an OPML file: (names added, [(url, why skipped)])."""
    feeds = read_opml(data)
    if not feeds:
        raise ParseError("the OPML file lists no feeds (no outline with an xmlUrl)")
    added: list[str] = []
    skipped: list[tuple[str, str]] = []
    with db.session() as session:
        taken = {record.name for record in list_sources(session)}
        for feed in feeds:
            try:
                location = parse_location(feed.url)
            except ValueError as exc:
                skipped.append((feed.url, str(exc)))
                continue
            if location.kind != HTTP:
                skipped.append((feed.url, "not an http(s) URL"))
                continue
            known = source_at(session, location.text)
            if known is not None:
                skipped.append((feed.url, f"already followed as {known.name}"))
                continue
            name = _name_for(feed, taken)
            add_source(session, SourceSettings(name, HTTP, location.text, interval_seconds, origin=OPML), now)
            added.append(name)
        audit(session, actor, "sources_import", "opml", {"added": len(added), "skipped": len(skipped)}, now=now)
    return added, skipped


def export_opml(db: Database, *, now: datetime) -> str:
    """Every followed feed URL as an OPML 2.0 document."""
    with db.session() as session:
        feeds = [OpmlFeed(r.name, r.location) for r in list_sources(session) if r.kind == HTTP]
    return write_opml(feeds, title="hardcore-digest sources", now=now)



def has_scheduled(db: Database) -> bool:
    """Whether `run` has any source to keep in step."""
    with db.session() as session:
        return has_scheduled_sources(session)
