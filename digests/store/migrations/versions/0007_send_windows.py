"""send windows shared by every worker: Telegram's limits hold for all of them together

send_reservations holds one row per request let through the send windows (by any worker of a
bot); send_windows one row per bot that every reservation locks first, so that counting and
reserving are one step across workers.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_windows",
        sa.Column("bot_key", sa.String(length=64), nullable=False),
        sa.Column("touched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bot_key"),
    )
    op.create_table(
        "send_reservations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_key", sa.String(length=64), nullable=False),
        sa.Column("chat", sa.String(length=128), nullable=True),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("chat_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overall_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_send_reservations_chat", "send_reservations", ["bot_key", "chat", "chat_until"])
    op.create_index("ix_send_reservations_overall", "send_reservations", ["bot_key", "overall_until"])


def downgrade() -> None:
    op.drop_index("ix_send_reservations_overall", table_name="send_reservations")
    op.drop_index("ix_send_reservations_chat", table_name="send_reservations")
    op.drop_table("send_reservations")
    op.drop_table("send_windows")
