"""`digestbot db backup` / `db restore`: SQLite's online backup taken while posts are being sent."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main as digestbot
from digests.clock import utcnow
from digests.store import open_database
from digests.store.db import Database
from digests.store.health import beat
from digests.store.models import Delivery, Item, Post
from tests.fakebotapi import FakeBotApi, RateLimits
from tests.publishing_helpers import RAISED_LIMITS, config_data, insert_items, write_config

ROOT = Path(__file__).resolve().parent.parent
MAIN, SECOND = -1001000000401, -1001000000402
ORDER = {"pending": 0, "retry": 0, "sending": 1, "sent": 2}


def _config(tmp_path: Path, db_name: str, *, base_url: str = "http://127.0.0.1:9/bot", token: str = "1:x",
            name: str = "config.yaml") -> Path:
    channels = [{"name": "main", "chat_id": MAIN, "schedule": ["0 9 * * *"], "per_slot": 40},
                {"name": "second", "chat_id": SECOND, "schedule": ["0 9 * * *"], "per_slot": 40}]
    data = config_data(f"sqlite:///{tmp_path / db_name}", base_url=base_url, token=token, channels=channels,
                       limits=RAISED_LIMITS)
    return write_config(tmp_path / name, data)


def _snapshot(db: Database) -> tuple[set[int], dict[int, tuple[str, int | None]], set[tuple[int, int, int | None]]]:
    """Items, posts (state, message_id) and delivery records committed now."""
    with db.session() as session:
        items = set(session.scalars(select(Item.id)))
        posts = {i: (state, message) for i, state, message in session.execute(select(Post.id, Post.state,
                                                                                   Post.message_id))}
        deliveries = {(c, i, p) for c, i, p in session.execute(select(Delivery.channel_id, Delivery.item_id,
                                                                       Delivery.post_id))}
    return items, posts, deliveries


@pytest.mark.slow
def test_a_backup_taken_during_a_publish_restores_every_record_committed_before_it(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'live.db'}")
    insert_items(db, 40)
    with FakeBotApi(limits=RateLimits(global_limit=None, group_limit=None)) as fake:
        fake.add_channel(MAIN)
        fake.add_channel(SECOND)
        fake.inject("sendMessage", "delay", times=None, delay=0.03)  # 80 posts: a publish of a few seconds
        config = _config(tmp_path, "live.db", base_url=fake.base_url, token=fake.token)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        publish = subprocess.Popen([sys.executable, "-m", "bot.cli", "--config", str(config), "publish", "--once"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 60
            while len(fake.sent) < 15:
                assert publish.poll() is None and time.monotonic() < deadline, publish.communicate()
                time.sleep(0.02)
            before = _snapshot(db)
            sent_before = len(fake.sent)
            assert digestbot(["--config", str(config), "db", "backup", str(tmp_path / "backup.db")]) == 0
            after = _snapshot(db)
            sent_after = len(fake.sent)
            out, err = publish.communicate(timeout=120)
        finally:
            if publish.poll() is None:
                publish.kill()
        assert publish.returncode == 0, err
        assert out.strip() == "sent 80, retried 0, failed 0, uncertain 0, flood waits 0, edited 0, deleted 0"
        # The backup ran in the middle: posts were sent before it began and after it ended.
        assert 15 <= sent_before <= sent_after < 80
        final = fake.sent

    assert not (tmp_path / "backup.db-wal").exists()  # one self-contained file
    restored_config = _config(tmp_path, "restored.db", name="restored.yaml")
    assert digestbot(["--config", str(restored_config), "db", "restore", str(tmp_path / "backup.db")]) == 0
    restored_db = open_database(f"sqlite:///{tmp_path / 'restored.db'}")
    items, posts, deliveries = _snapshot(restored_db)
    restored_db.dispose()

    assert items == before[0] == after[0] and len(items) == 40
    # Every delivery record committed before the backup began is there; none that came after it ended.
    assert before[2] <= deliveries <= after[2]
    assert set(before[1]) <= set(posts) <= set(after[1])
    by_chat_and_id = {(m.chat_id, m.message_id) for m in final}
    channel_chat = {1: MAIN, 2: SECOND}  # channel ids in config order (synced into an empty database)
    for post_id, (state, message_id) in posts.items():
        # Each post as it was at one moment between the two snapshots, never half a transaction.
        assert ORDER[before[1].get(post_id, ("pending", None))[0]] <= ORDER[state] <= ORDER[after[1][post_id][0]]
        if before[1].get(post_id, ("", None))[0] == "sent":
            assert (state, message_id) == before[1][post_id]
        if state == "sent":
            chat = channel_chat[next(c for c, _i, p in deliveries if p == post_id)]
            assert (chat, message_id) in by_chat_and_id
    db.dispose()


# ---------------------------------------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> tuple[Path, Database]:
    config = _config(tmp_path, "live.db")
    db = open_database(f"sqlite:///{tmp_path / 'live.db'}")
    insert_items(db, 5)
    yield config, db
    db.dispose()


def test_backup_refuses_to_replace_a_file_without_force(live: tuple[Path, Database], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config, _db = live
    target = tmp_path / "nightly.db"
    target.write_text("yesterday")
    assert digestbot(["--config", str(config), "db", "backup", str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"digestbot: error: {target} exists; add --force to replace it"
    assert target.read_text() == "yesterday"
    assert digestbot(["--config", str(config), "db", "backup", str(target), "--force"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"backup written to {target}: revision {_db.head_revision()}, 5 items, 0 posts, 0 delivery records")
    conn = sqlite3.connect(target)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 5
    conn.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".nightly")] == []  # no partial file left


def test_restore_refuses_what_would_lose_data_or_is_not_a_digest_database(
        live: tuple[Path, Database], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, db = live
    backup = tmp_path / "backup.db"
    assert digestbot(["--config", str(config), "db", "backup", str(backup)]) == 0
    capsys.readouterr()

    # Over an existing database: only with --force, and never while a bot runs on it.
    assert digestbot(["--config", str(config), "db", "restore", str(backup)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"digestbot: error: {tmp_path / 'live.db'} exists (revision {db.head_revision()}, 5 items, 0 posts, 0 delivery records, "
        f"{(tmp_path / 'live.db').stat().st_size / 1048576:.1f} MB); add --force to replace it with the backup")
    beat(db, "vm:4242", utcnow())
    assert digestbot(["--config", str(config), "db", "restore", str(backup), "--force"]) == 2
    err = capsys.readouterr().err
    assert "is in use by a running digestbot (heartbeat from vm:4242 (0 s ago)); stop it first" in err

    # Not a backup of this kind: named, with the reason.
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    newer = tmp_path / "newer.db"
    newer.write_bytes(backup.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    fresh = _config(tmp_path, "fresh.db", name="fresh.yaml")
    for path, reason in ((text, "not a SQLite database file"),
                         (other, "not a hardcore-digest database (no table alembic_version, channels, deliveries, "
                                 "documents, item_sources, items, kv, posts)"),
                         (newer, "database at migration 0099, which this digestbot does not know (made by a newer "
                                 "version?)"),
                         (tmp_path / "absent.db", "cannot read: No such file or directory")):
        assert digestbot(["--config", str(fresh), "db", "restore", str(path)]) == 2
        assert capsys.readouterr().err.strip() == f"digestbot: error: {path}: {reason}"
        assert not (tmp_path / "fresh.db").exists()

    # Into a new path: restored, and the database works (search included).
    assert digestbot(["--config", str(fresh), "db", "restore", str(backup)]) == 0
    assert "5 items" in capsys.readouterr().out
    assert digestbot(["--config", str(fresh), "items", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5


def test_restore_an_older_revision_says_the_next_start_migrates_it(live: tuple[Path, Database], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config, db = live
    backup = tmp_path / "backup.db"
    assert digestbot(["--config", str(config), "db", "backup", str(backup)]) == 0
    with sqlite3.connect(backup) as conn:  # as if taken before migration 0004 (it changed no table)
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    fresh = _config(tmp_path, "fresh.db", name="fresh.yaml")
    capsys.readouterr()
    assert digestbot(["--config", str(fresh), "db", "restore", str(backup)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "the next start (or `digestbot db upgrade`) migrates it to this version's schema")


def test_on_postgresql_backup_and_restore_print_the_pg_commands_without_the_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = config_data("postgresql+psycopg://digest:s3cr3t@db.example.org:5433/digest?sslmode=require",
                       base_url="http://127.0.0.1:9/bot", token="1:x", channels=[])
    config = write_config(tmp_path / "config.yaml", data)
    assert digestbot(["--config", str(config), "db", "backup", "digest.dump"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ("pg_dump --format=custom --no-owner --file=digest.dump "
                            "'postgresql://digest@db.example.org:5433/digest?sslmode=require'\n")
    assert "pg_dump" in captured.err and "PGPASSWORD" in captured.err
    assert digestbot(["--config", str(config), "db", "restore", "digest.dump"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ("pg_restore --clean --if-exists --no-owner "
                            "'--dbname=postgresql://digest@db.example.org:5433/digest?sslmode=require' digest.dump\n")
    assert "s3cr3t" not in captured.out + captured.err
    assert digestbot(["--config", str(config), "db", "backup"]) == 2  # FILE is required
    assert "give the FILE" in capsys.readouterr().err

