"""search index

SQLite: search_docs (the token text of each item, keyed by recency) as the external content of
the FTS5 table search_fts (deletes and updates reach it through triggers). PostgreSQL: search_docs (recency key with a btree
and a BRIN index, and a GIN-indexed tsvector stored inline) and search_texts (the token text the
ranking reads).
Items already stored are indexed after the migrations, by Database.upgrade (`digestbot db
upgrade` and every start that migrates; after `alembic upgrade` by hand, `digestbot db reindex`):
running today's search code here would change this migration whenever search changes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE TABLE search_docs (
        key INTEGER PRIMARY KEY,
        item_id INTEGER NOT NULL UNIQUE REFERENCES items (id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    # ascii: every non-ASCII character is part of a token, so FTS5 splits only at our spaces.
    # prefix='1': one-character queries (芯*) read one posting list, not every 芯X bigram's.
    """CREATE VIRTUAL TABLE search_fts USING fts5(
        title, body, content='search_docs', content_rowid='key', tokenize='ascii', prefix='1'
    )""",
    # No AFTER INSERT trigger: the code inserts into search_fts itself (see 0003, which drops the
    # trigger from databases made before).
    """CREATE TRIGGER search_docs_ad AFTER DELETE ON search_docs BEGIN
        INSERT INTO search_fts (search_fts, rowid, title, body) VALUES ('delete', old.key, old.title, old.body);
    END""",
    """CREATE TRIGGER search_docs_au AFTER UPDATE ON search_docs BEGIN
        INSERT INTO search_fts (search_fts, rowid, title, body) VALUES ('delete', old.key, old.title, old.body);
        INSERT INTO search_fts (rowid, title, body) VALUES (new.key, new.title, new.body);
    END""",
]

_POSTGRESQL = [
    # toast_tuple_target and STORAGE MAIN keep the (compressed) tsvector in the row: the
    # newest-first walk tests one tsvector per row and must not chase a TOAST pointer each time.
    """CREATE TABLE search_docs (
        item_id INTEGER PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE,
        key BIGINT NOT NULL,
        tsv TSVECTOR NOT NULL
    ) WITH (toast_tuple_target = 8160)""",
    "ALTER TABLE search_docs ALTER COLUMN tsv SET STORAGE MAIN",
    "CREATE UNIQUE INDEX ix_search_docs_key ON search_docs (key)",
    # On key + 0, so that a key-range condition written key + 0 can only use this one: a
    # recent window of a GIN search costs a few BRIN ranges instead of a btree range scan.
    # autosummarize: ranges filled by new rows are summarized by autovacuum, not left unsummarized
    # (an unsummarized range is in every window).
    "CREATE INDEX ix_search_docs_recent ON search_docs USING brin ((key + 0)) WITH (autosummarize = on)",
    # fastupdate off: no pending list that every search would have to scan after an ingest.
    "CREATE INDEX ix_search_docs_tsv ON search_docs USING gin (tsv) WITH (fastupdate = off)",
    """CREATE TABLE search_texts (
        item_id INTEGER PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in _POSTGRESQL:
            op.execute(statement)
        lz4 = bind.execute(
            text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        ).scalar()
        if lz4:  # several times faster to decompress than pglz
            op.execute("ALTER TABLE search_docs ALTER COLUMN tsv SET COMPRESSION lz4")
    else:
        for statement in _SQLITE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS search_texts")
        op.execute("DROP TABLE IF EXISTS search_docs")
    else:
        for trigger in ("search_docs_ai", "search_docs_ad", "search_docs_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
        op.execute("DROP TABLE IF EXISTS search_docs")
