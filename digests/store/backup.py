"""Backups of a SQLite database through SQLite's online backup API; pg_dump commands for PostgreSQL.

The backup API copies a consistent snapshot while the bot keeps running: in WAL mode one read
transaction sees every transaction committed before it began and none after, and writers are
not blocked. The copy is written beside its destination under a temporary name and renamed
when complete, so a backup file is never half written; a restore goes through the same API
into the live file, under SQLite's lock, so a reader never sees half a restore.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from digests.errors import DigestError
from digests.store.db import normalise_url
from digests.store.health import HEARTBEAT_PREFIX
from digests.store.revisions import known_revisions

_SQLITE_HEADER = b"SQLite format 3\x00"
_TABLES = {"alembic_version", "documents", "items", "item_sources", "channels", "posts", "deliveries", "kv"}
_BUSY_TIMEOUT = 10.0  # seconds a backup or restore waits for another connection's write lock


class BackupError(DigestError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class DatabaseFile:
    """What a SQLite file holds, as far as a backup or restore reports it."""

    path: Path
    revision: str
    items: int
    posts: int
    deliveries: int
    size: int

    def describe(self) -> str:
        return (f"revision {self.revision}, {self.items} items, {self.posts} posts, {self.deliveries} delivery "
                f"records, {self.size / 1048576:.1f} MB")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL; BackupError for an in-memory database."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory database has nothing to back up")
    return Path(parsed.database).expanduser()


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT)
    return sqlite3.connect(path, timeout=_BUSY_TIMEOUT)


def _describe(conn: sqlite3.Connection, path: Path) -> DatabaseFile:
    """Check that conn is a hardcore-digest database at a migration this code knows; what it holds."""
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a SQLite database ({exc})") from None
    missing = _TABLES - tables
    if missing:
        raise BackupError(f"{path}: not a hardcore-digest database (no table {', '.join(sorted(missing))})")
    revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    if revision is None or revision[0] not in known_revisions():
        found = revision[0] if revision else "(none)"
        raise BackupError(f"{path}: database at migration {found}, which this digestbot does not know "
                          "(made by a newer version?)")
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise BackupError(f"{path}: the database is damaged: {check}")

    def count(table: str) -> int:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    return DatabaseFile(path, revision[0], count("items"), count("posts"), count("deliveries"),
                        path.stat().st_size if path.exists() else 0)


def inspect_file(path: Path) -> DatabaseFile:
    """A backup file checked before a restore: SQLite, hardcore-digest tables, a known migration, intact."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise BackupError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if header != _SQLITE_HEADER:
        raise BackupError(f"{path}: not a SQLite database file")
    conn = _connect(path, read_only=True)
    try:
        return _describe(conn, path)
    finally:
        conn.close()


def backup_sqlite(url: str, target: Path, *, force: bool = False) -> DatabaseFile:
    """Copy the live database to target (safe while the bot runs); the copy is one self-contained file."""
    source = sqlite_path(url)
    assert source is not None, "backup_sqlite takes a SQLite URL"
    if not source.is_file():
        raise BackupError(f"no database file at {source} (database.url)")
    if target.exists() and target.resolve() == source.resolve():
        raise BackupError(f"{target} is the database itself; give another file")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; add --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such directory")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        src = _connect(source)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # one step: a single snapshot of every committed transaction
            dst.execute("PRAGMA journal_mode=DELETE")  # no -wal file beside the copy
            info = _describe(dst, source)
        finally:
            dst.close()
            src.close()
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return DatabaseFile(target, info.revision, info.items, info.posts, info.deliveries, target.stat().st_size)


def running_workers(path: Path, now: datetime, within: timedelta) -> dict[str, datetime]:
    """Workers of `digestbot run` whose heartbeat in this file is recent (they would write on)."""
    conn = _connect(path, read_only=True)
    try:
        rows = conn.execute("SELECT key, value FROM kv WHERE key LIKE ?", (HEARTBEAT_PREFIX + "%",)).fetchall()
    except sqlite3.DatabaseError:
        return {}
    finally:
        conn.close()
    workers = {}
    for key, value in rows:
        try:
            at = datetime.fromisoformat(json.loads(value)["at"])
        except (ValueError, KeyError, TypeError):
            continue
        if now - at <= within:
            workers[key.removeprefix(HEARTBEAT_PREFIX)] = at
    return workers


def restore_sqlite(backup: Path, url: str, *, now: datetime, running_within: timedelta,
                   force: bool = False) -> DatabaseFile:
    """Put a backup in place of the configured database; refuses while a bot runs on it."""
    target = sqlite_path(url)
    assert target is not None, "restore_sqlite takes a SQLite URL"
    info = inspect_file(backup)
    if target.exists() and target.resolve() == backup.resolve():
        raise BackupError(f"{backup} is the configured database itself")
    if target.exists() and target.stat().st_size > 0:
        workers = running_workers(target, now, running_within)
        if workers:
            names = ", ".join(f"{w} ({int((now - at).total_seconds())} s ago)" for w, at in sorted(workers.items()))
            raise BackupError(f"{target} is in use by a running digestbot (heartbeat from {names}); stop it first")
        if not force:
            try:
                current = inspect_file(target).describe()
            except BackupError as exc:
                current = str(exc)
            raise BackupError(f"{target} exists ({current}); add --force to replace it with the backup")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            stale.unlink(missing_ok=True)  # a journal of a deleted database would be replayed into the new one
    try:
        src = _connect(backup, read_only=True)
        dst = _connect(target)
        try:
            src.backup(dst)
            restored = _describe(dst, target)
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"restore into {target} failed: {exc}") from None
    return DatabaseFile(target, restored.revision, restored.items, restored.posts, restored.deliveries,
                        target.stat().st_size or info.size)


def _libpq_url(url: str) -> str:
    """The URL for pg_dump / pg_restore: the libpq scheme, no password (PGPASSWORD or ~/.pgpass give it)."""
    parsed = make_url(normalise_url(url))
    bare = URL.create("postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
                      database=parsed.database, query=parsed.query)
    return bare.render_as_string(hide_password=False)


def pg_dump_command(url: str, target: str) -> str:
    return shlex.join(["pg_dump", "--format=custom", "--no-owner", f"--file={target}", _libpq_url(url)])


def pg_restore_command(url: str, backup: str) -> str:
    return shlex.join(["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={_libpq_url(url)}", backup])
