"""The database handle: engine, sessions and migrations, the same code on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from digests.errors import ConfigError, DigestError
from digests.store import search

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# An arbitrary constant: every digestbot process serialises its migrations on this lock.
_PG_MIGRATION_LOCK = 741_852_963


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def normalise_url(url: str) -> str:
    """postgresql:// means psycopg 3 here (the driver this project installs)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database.url: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


@contextmanager
def _sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite's foreign keys off while it migrates: a batch migration copies a table and drops the old
    one, and with them on that DROP deletes every row that references the table (ON DELETE CASCADE)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction, or SQLite ignores it
    conn.commit()
    try:
        yield
    finally:
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.commit()


class Database:
    """An engine plus a session factory; `session()` is a unit of work that commits or rolls back."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    def _alembic_config(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (a new database is created here), then build the
        search index if a migration left it empty."""
        cfg = self._alembic_config()
        try:
            with self.engine.connect() as conn, _sqlite_foreign_keys_off(conn), conn.begin():
                if self.dialect == "postgresql":
                    # Several workers may start at once: one migrates, the others wait.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if self.dialect == "sqlite" and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").all()):
                    raise DigestError(f"migrating {self.safe_url} would break {len(broken)} reference(s), "
                                      f"e.g. {tuple(broken[0])}: nothing was changed")
                # Migrations only shape the schema, so that an old one never changes with today's
                # code; what today's code derives from the rows (the search index of items stored
                # before migration 0002) is built here, at head, in the same transaction.
                with Session(bind=conn) as session:
                    indexed = search.rebuild_index_if_empty(session)
                if indexed:
                    log.info("search index built: %d items", indexed)
        except OperationalError as exc:
            raise DigestError(f"cannot open the database {self.safe_url}: {exc.orig}") from None

    def ensure_schema(self) -> None:
        """Upgrade only when behind; cheap on every start."""
        try:
            current = self.current_revision()
        except OperationalError as exc:
            raise DigestError(f"cannot open the database {self.safe_url}: {exc.orig}") from None
        if current != self.head_revision():
            log.info("migrating database %s from %s", self.safe_url, current or "empty")
            self.upgrade()

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, migrate: bool = True, **engine_kwargs: Any) -> Database:
    """A Database for url, its schema brought up to date unless migrate is False."""
    db = Database(url, **engine_kwargs)
    if migrate:
        db.ensure_schema()
    return db
