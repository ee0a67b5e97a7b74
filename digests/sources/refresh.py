"""Refresh sources: take the lease, fetch, ingest what changed, remove what went, record the health.

A source that fails is recorded with its reason and backed off; it never stops the others. Feeds
are fetched several at a time (I/O); everything that writes to the database runs in the calling
thread, one source after another.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from digests.clock import utcnow
from digests.errors import DigestError
from digests.ingest.pipeline import IngestReport, ingest_entries
from digests.ingest.walk import Source
from digests.source_config import FetchConfig
from digests.source_locations import GIT, HTTP, PATH, parse_location
from digests.sources import local
from digests.sources.fetch import Fetched, Fetcher, FetchError, HostWaitError
from digests.sources.git import GitRepository
from digests.sources.policy import is_selected, next_fetch_at, switches_off, truncation_problem
from digests.store.db import Database
from digests.store.documents import document_paths_under, remove_documents
from digests.store.sources import (
    RefreshRecord,
    SourceRecord,
    claim_sources,
    due_sources,
    file_stats,
    record_refreshes,
    release_lease,
    renew_lease,
    save_file_stats,
)

log = logging.getLogger(__name__)
OK, UNCHANGED, PARTIAL, FAILED, WAITING, BUSY = "ok", "unchanged", "partial", "failed", "waiting", "busy"
_WAVE = 64  # feeds claimed and fetched together: leases are taken shortly before their fetch
_RENEW_EVERY = 60.0  # seconds between lease renewals during a long ingest
_FLUSH_EVERY = 0.25  # seconds between writes of a wave's health rows


@dataclass(slots=True)
class Outcome:
    """What one refresh of one source did, for the command line, the log and the admins."""

    name: str
    kind: str
    location: str
    status: str
    error: str | None = None
    http_status: int | None = None
    report: IngestReport | None = None
    removed: int = 0
    commit: str | None = None
    notice: str | None = None  # for the admins: the source was switched off (English; the bot words its own)
    switched_off_after: int | None = None  # the failures in a row that switched it off just now

    @property
    def items_added(self) -> int:
        return self.report.items_new if self.report is not None else 0

    def as_dict(self) -> dict[str, Any]:
        report = self.report.as_dict() if self.report is not None else None
        return {"name": self.name, "kind": self.kind, "location": self.location, "status": self.status,
                "error": self.error, "http_status": self.http_status, "items_added": self.items_added,
                "items_removed": self.removed + (self.report.items_removed if self.report else 0),
                "commit": self.commit, "ingest": report}


def worker_id() -> str:
    """This process's lease owner name: host, pid and a random part (pids repeat across hosts and restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Refresher:
    """Refreshes sources for one process; keeps one HTTP client (pooled connections) across rounds."""

    def __init__(self, db: Database, fetch: FetchConfig, *, proxy: str | None = None,
                 clock: Callable[[], datetime] = utcnow, rand: Callable[[], float] = random.random,
                 transport: Any = None) -> None:
        self.db = db
        self.config = fetch
        self.proxy = proxy
        self.clock = clock
        self.rand = rand
        self.owner = worker_id()
        self._transport = transport
        self._fetcher: Fetcher | None = None
        self._started: dict[str, datetime] = {}

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            self._fetcher = Fetcher(self.config, proxy=self.proxy, transport=self._transport)
        return self._fetcher

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    def refresh_due(self, *, should_stop: Callable[[], bool] = lambda: False) -> list[Outcome]:
        """Every source whose time has come (and whose lease is free)."""
        with self.db.session() as session:
            due = due_sources(session, self.clock())
        return self.refresh(due, should_stop=should_stop)

    def refresh(self, sources: Sequence[SourceRecord], *,
                should_stop: Callable[[], bool] = lambda: False) -> list[Outcome]:
        """Refresh these sources now, whatever their schedule; one Outcome each, in order."""
        outcomes: dict[str, Outcome] = {}
        now = self.clock()
        for source in sources:  # asked to wait (429/503 with Retry-After): not even on request
            if source.http_status in (429, 503) and source.next_fetch_at is not None and source.next_fetch_at > now:
                outcomes[source.name] = Outcome(
                    source.name, source.kind, source.location, WAITING,
                    f"the server asked us to wait (Retry-After) until {source.next_fetch_at.isoformat(timespec='seconds')}",
                    http_status=source.http_status)
        feeds = [s for s in sources if s.kind == HTTP and s.name not in outcomes]
        if feeds:
            for outcome in self._feeds(feeds, should_stop):
                outcomes[outcome.name] = outcome
        for source in sources:
            if source.kind != HTTP and not should_stop():
                outcomes[source.name] = self._one(source)
        return [outcomes[s.name] for s in sources if s.name in outcomes]

    # -- feeds and documents over HTTP

    def _claim(self, sources: Sequence[SourceRecord]) -> tuple[list[SourceRecord], list[Outcome]]:
        now = self.clock()
        with self.db.session() as session:
            ours = claim_sources(session, [s.name for s in sources], self.owner, now, self.config.lease_seconds)
        taken = {s.name for s in ours}
        self._started.update((name, now) for name in taken)
        busy = [Outcome(s.name, s.kind, s.location, BUSY, "another worker is refreshing it")
                for s in sources if s.name not in taken]
        return ours, busy

    def _feeds(self, feeds: Sequence[SourceRecord], should_stop: Callable[[], bool]) -> list[Outcome]:
        """Fetch feeds several at a time, ingesting each answer here as it comes.

        Leases are taken a wave at a time, shortly before the wave's fetches, and the next wave is
        claimed while the last one's stragglers are still out, so the fetchers never stand idle.
        """
        outcomes: list[Outcome] = []
        queue = list(feeds)
        pending: dict[Future[Fetched], SourceRecord] = {}
        records: list[tuple[str, RefreshRecord]] = []
        flushed = time.monotonic()
        workers = min(self.config.concurrency, len(feeds))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="digestbot-fetch") as pool:
            while queue or pending:
                if queue and len(pending) <= _WAVE // 2 and not should_stop():
                    wave, queue = queue[:_WAVE], queue[_WAVE:]
                    ours, busy = self._claim(wave)
                    outcomes += busy
                    for s in ours:
                        future = pool.submit(self.fetcher.get, s.location, etag=s.etag, last_modified=s.last_modified)
                        pending[future] = s
                elif should_stop():
                    queue = []
                if not pending:
                    continue
                done, _ = wait(pending, timeout=_FLUSH_EVERY, return_when=FIRST_COMPLETED)
                for future in done:
                    source = pending.pop(future)
                    try:
                        outcome, record = self._feed_done(source, future)
                    except Exception as exc:  # a bug or a database failure: this source only
                        outcome, record = self._crashed(source, exc)
                    outcomes.append(outcome)
                    records.append((source.name, record))
                # Health rows a few at a time: all-304 rounds cost few transactions, and a feed that
                # hangs does not hold back what the others found.
                if records and (not pending or time.monotonic() - flushed >= _FLUSH_EVERY):
                    with self.db.session() as session:
                        record_refreshes(session, self.owner, records)
                    records, flushed = [], time.monotonic()
        return outcomes

    def _feed_done(self, source: SourceRecord, future: Future[Fetched]) -> tuple[Outcome, RefreshRecord]:
        try:
            fetched = future.result()
        except HostWaitError as exc:
            return (Outcome(source.name, HTTP, source.location, WAITING, str(exc)),
                    self._waiting(source, exc.retry_after or 0.0))
        except FetchError as exc:
            return self._failure(source, str(exc), http_status=exc.status, retry_after=exc.retry_after)
        if fetched.status == 304 or fetched.body is None:
            record = self._success(source, UNCHANGED, http_status=304,
                                   validators=(fetched.etag or source.etag, fetched.last_modified or source.last_modified))
            return Outcome(source.name, HTTP, source.location, UNCHANGED, http_status=304), record
        body = fetched.body
        problem = truncation_problem(body)
        if problem is not None:
            return self._failure(source, problem, http_status=fetched.status)
        report = ingest_entries(self.db, [Source(source.location, len(body), lambda: body)],
                                max_bytes=self.config.max_bytes, tags=source.tags, now=self.clock)
        if report.documents_failed:
            return self._failure(source, report.failures[0][1], http_status=fetched.status, report=report)
        changed = bool(report.documents_new or report.documents_updated)
        record = self._success(source, OK if changed else UNCHANGED, http_status=fetched.status,
                               items_added=report.items_new, changed=changed,
                               validators=(fetched.etag, fetched.last_modified))
        return Outcome(source.name, HTTP, source.location, record.status, http_status=fetched.status,
                       report=report), record

    # -- git repositories and local folders, one at a time

    def _one(self, source: SourceRecord) -> Outcome:
        ours, busy = self._claim([source])
        if not ours:
            return busy[0]
        source = ours[0]
        try:
            if source.kind == GIT:
                outcome, record = self._git(source)
            elif source.kind == PATH:
                outcome, record = self._folder(source)
            else:
                raise DigestError(f"unknown kind of source {source.kind!r}")
        except DigestError as exc:
            outcome, record = self._failure(source, str(exc))
        except Exception as exc:
            outcome, record = self._crashed(source, exc)
        try:
            with self.db.session() as session:
                record_refreshes(session, self.owner, [(source.name, record)])
        except Exception:
            log.exception("could not record the refresh of source %s", source.name)
            with self.db.session() as session:
                release_lease(session, source.name, self.owner)
        return outcome

    def _git(self, source: SourceRecord) -> tuple[Outcome, RefreshRecord]:
        location = parse_location(source.location)
        repository = GitRepository(location, self.config.cache_dir, timeout=self.config.git_timeout,
                                   proxy=self.proxy)
        # A branch named in the location that is not the one ingested: the recorded commit means nothing.
        since = source.git_commit if not location.branch or location.branch == source.git_branch else None
        update = repository.update(since)
        if not update.full and not update.files and not update.deleted:
            record = self._success(source, UNCHANGED, git=(update.commit, update.branch))
            return Outcome(source.name, GIT, source.location, UNCHANGED, commit=update.commit), record
        prefix = f"{location.subdir}/" if location.subdir else ""
        files = [f for f in update.files if is_selected(f.path[len(prefix):], source.select)]
        path_of = location.git_document_path
        gone = [path_of(update.branch, path) for path in update.deleted]
        if update.full:  # what is stored of this repository but no longer in its tree
            present = {path_of(update.branch, f.path) for f in files}
            with self.db.session() as session:
                gone += [p for p in document_paths_under(session, location.git_document_prefix(update.branch))
                         if p not in present]
        with repository.blobs() as blobs:
            entries: list[Source | tuple[str, str]] = [
                Source(path_of(update.branch, f.path), f.size, partial(blobs.read, f.sha)) for f in files
            ]
            report = ingest_entries(self.db, entries, max_bytes=self.config.max_bytes, tags=source.tags,
                                    progress=self._renewer(source.name), now=self.clock)
        removed = self._remove(gone)
        repository.mark_ingested(update.commit)
        return self._changed(source, GIT, report, removed, git=(update.commit, update.branch))

    def _folder(self, source: SourceRecord) -> tuple[Outcome, RefreshRecord]:
        location = parse_location(source.location)
        with self.db.session() as session:
            previous = file_stats(session, source.id)
        found = local.scan(location.path, previous, source.select)
        if not found.entries and not found.gone:
            return (Outcome(source.name, PATH, source.location, UNCHANGED),
                    self._success(source, UNCHANGED))
        report = ingest_entries(self.db, found.entries, max_bytes=self.config.max_bytes, tags=source.tags,
                                progress=self._renewer(source.name), now=self.clock)
        gone = list(found.gone)
        with self.db.session() as session:
            for path in found.gone:
                if local.is_archive(path):
                    gone += document_paths_under(session, path + local.ARCHIVE_MEMBER)
        removed = self._remove(gone)  # a crash before the stats below: the next scan removes them again
        with self.db.session() as session:
            save_file_stats(session, source.id, found.changed, found.gone)
        return self._changed(source, PATH, report, removed)

    def _remove(self, paths: Sequence[str]) -> int:
        """Documents gone from their source: their items leave the archive and the search index."""
        if not paths:
            return 0
        with self.db.session() as session:
            removed = remove_documents(session, paths, self.clock())
        return len(removed)

    def _changed(self, source: SourceRecord, kind: str, report: IngestReport, removed: int,
                 git: tuple[str, str] | None = None) -> tuple[Outcome, RefreshRecord]:
        """A refresh that read documents: ok, or partial when some of them failed (each named)."""
        failed = report.documents_failed
        status = PARTIAL if failed else OK
        error = None
        if failed:
            path, reason = report.failures[0]
            error = f"{failed} document(s) failed; {path}: {reason}"
        changed = bool(report.documents_new or report.documents_updated or removed) or git is not None
        record = self._success(source, status, items_added=report.items_new, changed=changed,
                               git=git, error=error)
        return Outcome(source.name, kind, source.location, status, error, report=report, removed=removed,
                       commit=git[0] if git else None), record

    def _renewer(self, name: str) -> Callable[[str], None]:
        last = time.monotonic()

        def renew(_path: str) -> None:
            nonlocal last
            if time.monotonic() - last >= _RENEW_EVERY:
                last = time.monotonic()
                with self.db.session() as session:
                    renew_lease(session, name, self.owner, self.clock(), self.config.lease_seconds)

        return renew

    # -- the health to record

    def _began(self, source: SourceRecord) -> datetime:
        """When this source's refresh began: its next fetch counts from there, not from the end."""
        return self._started.pop(source.name, None) or self.clock()

    def _success(self, source: SourceRecord, status: str, *, http_status: int | None = None,
                 items_added: int = 0, changed: bool = False, error: str | None = None,
                 validators: tuple[str | None, str | None] | None = None,
                 git: tuple[str, str] | None = None) -> RefreshRecord:
        now = self._began(source)
        interval = source.interval_seconds
        upcoming = next_fetch_at(now, interval=interval, failures=0) if interval else None
        return RefreshRecord(now, status, upcoming, 0, error=error, http_status=http_status,
                             items_added=items_added, changed=changed, validators=validators, git=git)

    def _waiting(self, source: SourceRecord, wait: float) -> RefreshRecord:
        now = self._began(source)
        upcoming = next_fetch_at(now, interval=max(wait, source.interval_seconds or 0), failures=0)
        return RefreshRecord(now, WAITING, upcoming, source.consecutive_failures, error=source.last_error,
                             http_status=source.http_status)

    def _failure(self, source: SourceRecord, error: str, *, http_status: int | None = None,
                 retry_after: float | None = None,
                 report: IngestReport | None = None) -> tuple[Outcome, RefreshRecord]:
        config = self.config
        now = self._began(source)
        failures = source.consecutive_failures + 1
        upcoming: datetime | None
        if source.interval_seconds:
            upcoming = next_fetch_at(now, interval=source.interval_seconds, failures=failures,
                                     retry_after=retry_after, base=config.backoff_seconds,
                                     maximum=config.backoff_max_seconds, rand=self.rand())
        else:  # fetched only when asked; a Retry-After still holds for the next time
            upcoming = now + timedelta(seconds=retry_after) if retry_after is not None else None
        notice = reason = None
        if switches_off(source.consecutive_failures, failures, config.max_failures):
            reason = f"switched off after {failures} failures in a row; the last: {error}"
            notice = (f"Source {source.name} ({source.location}) is switched off after {failures} failures in "
                      f"a row. The last: {error}\nTurn it on again with /sources enable {source.name} "
                      f"(or digestbot sources enable {source.name}).")
        log.warning("source %s failed (%d in a row): %s", source.name, failures, error)
        record = RefreshRecord(now, FAILED, upcoming, failures, error=error, http_status=http_status,
                               disabled_reason=reason)
        outcome = Outcome(source.name, source.kind, source.location, FAILED, error, http_status=http_status,
                          report=report, notice=notice, switched_off_after=failures if notice else None)
        return outcome, record

    def _crashed(self, source: SourceRecord, exc: Exception) -> tuple[Outcome, RefreshRecord]:
        log.error("refreshing source %s failed unexpectedly", source.name, exc_info=exc)
        return self._failure(source, f"internal error: {exc.__class__.__name__}: {exc}")
