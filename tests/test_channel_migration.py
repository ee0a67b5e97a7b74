"""Migration 0008: a database with one chat under two channel rows (the double-posting bug) upgrades without
posting anything to that chat again; and the migrated schema is the models' schema."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from bot.config import config_from_mapping
from digests import actions
from digests.store import Database, open_database
from digests.store.db import MIGRATIONS
from digests.store.models import AuditEntry, Base, Channel, Delivery
from tests.publishing_helpers import insert_items

CHAT = "-1001000000201"


def _upgrade_to(db: Database, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _old_channel(db: Database, name: str, chat_id: str, digests_posted: int) -> int:
    at = datetime(2024, 3, 1, tzinfo=UTC)
    stamp = at.replace(tzinfo=None) if db.dialect == "sqlite" else at
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO channels (name, chat_id, settings, config_snapshot, paused, digest_counter, selection_cursor, "
            "created_at, updated_at) VALUES (:name, :chat, :settings, :settings, false, :n, '{}', :at, :at)"),
            {"name": name, "chat": chat_id, "n": digests_posted, "at": stamp,
             "settings": f'{{"name": "{name}", "chat_id": "{chat_id}"}}'})
        conn.execute(text("INSERT INTO audit_log (at, actor, action, target, detail) "
                          "VALUES (:at, 'tg:1', 'pause', :target, '{}')"), {"at": stamp, "target": f"channel:{name}"})
        return int(conn.execute(text("SELECT id FROM channels WHERE name = :name"), {"name": name}).scalar_one())


def _old_post(db: Database, channel_id: int, item_ids: list[int], state: str) -> None:
    at = datetime(2024, 3, 2, tzinfo=UTC)
    stamp = at.replace(tzinfo=None) if db.dialect == "sqlite" else at
    with db.engine.begin() as conn:
        post_id = conn.execute(text(
            "INSERT INTO posts (channel_id, state, mode, html, item_ids, part, attempts, plain_fallback, "
            "created_at, updated_at) VALUES (:c, :state, 'single', 'x', '[]', 1, 1, false, :at, :at) RETURNING id"),
            {"c": channel_id, "state": state, "at": stamp}).scalar_one()
        for item_id in item_ids:
            conn.execute(text("INSERT INTO deliveries (channel_id, item_id, post_id, position, skipped, created_at) "
                              "VALUES (:c, :i, :p, 0, false, :at)"), {"c": channel_id, "i": item_id, "p": post_id,
                                                                      "at": stamp})


def test_one_chat_under_two_rows_keeps_one_history(db_url: str) -> None:
    db = Database(db_url)
    try:
        _upgrade_to(db, "0004")
        items = insert_items(db, 6)
        main = _old_channel(db, "main", CHAT, 3)
        column = _old_channel(db, "column", f" {CHAT} ", 1)  # the rename that made a second row
        _old_post(db, main, items[:2], "sent")
        _old_post(db, column, items[2:3], "sent")  # went out twice before the fix, or once here
        _old_post(db, column, items[3:4], "uncertain")
        _old_post(db, column, items[4:5], "pending")  # never reached the chat
        db.upgrade()  # as `digestbot db upgrade` and every start do

        with db.session() as session:
            kept, retired = session.scalars(select(Channel).order_by(Channel.id)).all()
            assert (kept.name, kept.chat_key, kept.retired_at) == ("main", CHAT, None)
            assert (retired.chat_key, retired.retired_by) == (None, "migration")
            assert "main" in (retired.retired_reason or "")
            on_kept = set(session.scalars(select(Delivery.item_id).where(Delivery.channel_id == kept.id)))
            assert on_kept == set(items[:4])  # sent and maybe-sent ones; the pending one may still go
            logs = {e.target: e.channel_id for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "pause"))}
            assert logs == {"channel:main": kept.id, "channel:column": retired.id}

        # The operator's config has `column` on that chat: it is the kept row, under its new name.
        config = config_from_mapping({"database": {"url": db_url},
                                      "channels": [{"name": "column", "chat_id": int(CHAT), "per_slot": 10}]})
        assert actions.sync_from_config(db, config, retire_missing=True) == ["column"]
        with db.session() as session:
            row = session.get(Channel, kept.id)
            assert row is not None and (row.name, row.digest_counter) == ("column", 3)
    finally:
        db.dispose()


def test_migrated_schema_is_the_models_schema(db_url: str) -> None:
    db = open_database(db_url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True,
                # migration 0002 makes the search tables by hand; the models do not describe them
                "include_object": lambda obj, name, type_, reflected, compare_to: not (
                    type_ == "table" and reflected and compare_to is None and name.startswith("search_")),
            })
            assert compare_metadata(context, Base.metadata) == []
    finally:
        db.dispose()


def test_downgrade_makes_names_unique_again_and_upgrades_back(db_url: str) -> None:
    db = open_database(db_url)
    try:
        first = config_from_mapping({"channels": [{"name": "main", "chat_id": CHAT}]})
        second = config_from_mapping({"channels": [{"name": "main", "chat_id": "-1001000000202"}]})
        actions.sync_from_config(db, first, retire_missing=True)
        actions.sync_from_config(db, second, retire_missing=True)  # the name moves: the first row retires
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        with db.engine.connect() as conn:
            names = sorted(conn.execute(text("SELECT name FROM channels")).scalars())
        assert names[0] == "main" and names[1].startswith("main~")
        db.upgrade()
        with db.session() as session:
            assert sorted(c.chat_key or "" for c in session.scalars(select(Channel))) == sorted(
                [CHAT, "-1001000000202"])
    finally:
        db.dispose()
