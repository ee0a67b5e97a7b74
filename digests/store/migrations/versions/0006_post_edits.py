"""post edits: sent posts follow corrections of their items

The post_edits table is the outbox of edits and deletions of sent messages. Posts keep what
their message shows (content_hash, the edit count, the newest edit's state and error) and the
newest item change they were checked against (checked_at). The indexes on items.updated_at and
commentaries.created_at let each drain find what changed since its last look.

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "post_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("photo", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_post_edits_state", "post_edits", ["state", "id"])
    op.create_index("ix_post_edits_post", "post_edits", ["post_id", "id"])
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("edit_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_edit_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("edit_state", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("edit_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_items_updated", "items", ["updated_at"])
    op.create_index("ix_commentaries_created", "commentaries", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_commentaries_created", table_name="commentaries")
    op.drop_index("ix_items_updated", table_name="items")
    with op.batch_alter_table("posts") as batch:
        for column in ("checked_at", "edit_error", "edit_state", "last_edit_at", "edit_count", "content_hash"):
            batch.drop_column(column)
    op.drop_index("ix_post_edits_post", table_name="post_edits")
    op.drop_index("ix_post_edits_state", table_name="post_edits")
    op.drop_table("post_edits")
