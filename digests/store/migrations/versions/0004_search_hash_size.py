"""search index: FTS5 gathers a whole ingest transaction's terms before writing them out

SQLite only. FTS5 keeps the terms of rows inserted in a transaction in an in-memory hash and
writes them out as a new segment whenever the hash passes 'hashsize' (1 MB by default) and at
commit. A first ingest writes 1,000 documents a transaction, several MB of terms: with 1 MB,
each transaction left several small segments that automerge then merged again. With 16 MB, one
segment per transaction (FTS5 insert cost of the benchmark's rows: 118 -> 78-98 us per item).
The setting is kept in search_fts_config; the memory is used only while a write is open.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HASH_SIZE = 16 * 1024 * 1024


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"INSERT INTO search_fts (search_fts, rank) VALUES ('hashsize', {HASH_SIZE})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DELETE FROM search_fts_config WHERE k = 'hashsize'")
