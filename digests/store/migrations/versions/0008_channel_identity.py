"""channel identity: a channel row is its chat, not its name; channels retire instead of vanishing

Before this, channels were keyed by name: renaming one in config.yaml made a new row with no
history, which posted the whole backlog to the same chat again. Now each row carries chat_key
(the numeric chat id, or the lower-cased @username until Telegram resolves it), unique; the
name is a label and no longer unique (a retired channel may keep a name config.yaml now gives
another chat). The audit log names the channel row it acted on, so it follows renames.

A database that already holds two rows for one chat (the double-posting bug itself) keeps the
oldest as that chat's row; the others retire, and the items they delivered (sent, or maybe
sent) are marked skipped on the kept row, so the chat never gets them a second time.

Revision ID: 0008
Revises: 0004
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None

_NUMERIC = re.compile(r"-?\d+")
# Posts whose items reached the chat, or may have: what a retired duplicate must not let go out again.
_REACHED = ("sent", "uncertain", "sending")


def _chat_key(chat_id: str) -> str:
    """The identity rule as of this revision (digests.chats.chat_key, without resolution)."""
    text = chat_id.strip()
    return str(int(text)) if _NUMERIC.fullmatch(text) else text.lower()


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        # SQLite named the old UNIQUE (name) nothing: the convention lets the table copy drop it.
        with op.batch_alter_table("channels", naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}) as batch:
            batch.drop_constraint("uq_channels_name", type_="unique")
            _add_channel_columns(batch)
    else:
        op.drop_constraint("channels_name_key", "channels", type_="unique")
        with op.batch_alter_table("channels") as batch:
            _add_channel_columns(batch)
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("channel_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_audit_log_channel_id_channels", "channels", ["channel_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_index("ix_audit_log_channel_id", ["channel_id"], unique=False)

    op.execute("UPDATE audit_log SET channel_id = (SELECT channels.id FROM channels "
               "WHERE 'channel:' || channels.name = audit_log.target) WHERE target LIKE 'channel:%'")

    now = datetime.now(UTC)
    stamp = now.replace(tzinfo=None) if sqlite else now
    kept: dict[str, tuple[int, str]] = {}
    for row_id, name, chat_id in bind.execute(sa.text("SELECT id, name, chat_id FROM channels ORDER BY id")):
        key = _chat_key(chat_id)
        if key not in kept:
            kept[key] = (row_id, name)
            bind.execute(sa.text("UPDATE channels SET chat_key = :key WHERE id = :id"), {"key": key, "id": row_id})
            continue
        keep_id, keep_name = kept[key]
        bind.execute(
            sa.text("UPDATE channels SET retired_at = :now, retired_by = 'migration', retired_reason = :why "
                    "WHERE id = :id"),
            {"now": stamp, "id": row_id,
             "why": f"its chat {chat_id} is also the chat of channel {keep_name}, which keeps its history"},
        )
        bind.execute(
            sa.text(
                "INSERT INTO deliveries (channel_id, item_id, post_id, position, skipped, created_at) "
                "SELECT :keep, d.item_id, NULL, 0, :yes, d.created_at FROM deliveries d "
                "LEFT JOIN posts p ON p.id = d.post_id "
                "WHERE d.channel_id = :dup AND (d.post_id IS NULL OR p.state IN :reached) "
                "AND NOT EXISTS (SELECT 1 FROM deliveries k WHERE k.channel_id = :keep AND k.item_id = d.item_id)"
            ).bindparams(sa.bindparam("reached", expanding=True)),
            {"keep": keep_id, "dup": row_id, "yes": True, "reached": list(_REACHED)},
        )
        bind.execute(
            sa.text("INSERT INTO audit_log (at, actor, action, target, detail, channel_id) "
                    "VALUES (:now, 'migration', 'retire', :target, :detail, :id)")
            .bindparams(sa.bindparam("detail", type_=sa.JSON())),
            {"now": stamp, "target": f"channel:{name}", "id": row_id,
             "detail": {"reason": f"shares chat {chat_id} with channel {keep_name} (#{keep_id})"}},
        )

    with op.batch_alter_table("channels") as batch:
        batch.create_unique_constraint("uq_channels_chat_key", ["chat_key"])
        batch.create_index("ix_channels_name", ["name"], unique=False)


def _add_channel_columns(batch: Any) -> None:
    batch.add_column(sa.Column("chat_key", sa.String(length=128), nullable=True))
    batch.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
    batch.add_column(sa.Column("retired_by", sa.String(length=128), nullable=True))
    batch.add_column(sa.Column("retired_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    # Names are unique again: a retired channel that shares its name with another gets its id appended.
    op.execute("UPDATE channels SET name = substr(name, 1, 48) || '~' || CAST(id AS VARCHAR(16)) "
               "WHERE retired_at IS NOT NULL AND name IN (SELECT name FROM channels GROUP BY name HAVING COUNT(*) > 1)")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_channel_id")
        batch.drop_constraint("fk_audit_log_channel_id_channels", type_="foreignkey")
        batch.drop_column("channel_id")
    with op.batch_alter_table("channels") as batch:
        batch.drop_index("ix_channels_name")
        batch.drop_constraint("uq_channels_chat_key", type_="unique")
        for column in ("retired_reason", "retired_by", "retired_at", "chat_key"):
            batch.drop_column(column)
        # The name 0001 gave it on PostgreSQL; on SQLite it had none, and upgrade() finds either.
        batch.create_unique_constraint("channels_name_key" if op.get_bind().dialect.name == "postgresql"
                                       else "uq_channels_name", ["name"])
