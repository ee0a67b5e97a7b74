"""`digestbot publish --once` killed with SIGKILL between an edit's request and its record."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from digests.ingest.pipeline import ingest
from digests.store import open_database
from tests.fakebotapi import FakeBotApiProcess
from tests.publishing_helpers import ADMIN, article_document, config_data, write_config

pytestmark = pytest.mark.slow

CHAT = -1004000000003
LEASE = 5  # the shortest lease config allows
DIGESTBOT = Path(sys.executable).parent / "digestbot"
ROOT = Path(__file__).resolve().parent.parent
TITLES = {16201: "用 rsync 做增量备份", 16202: "用 tmux 管理终端会话"}


def write_article(archive: Path, article_id: int, title: str) -> None:
    text = article_document(article_id, f"2024-03-{article_id % 100:02d} 09:00:00", title, f"{title}：一篇短文。")
    (archive / f"{article_id}.md").write_text(text, encoding="utf-8")


def query(db_file: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql).fetchall()


def publish(config: Path, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(DIGESTBOT), "--config", str(config), "publish", "--once"], cwd=ROOT,
                            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        time.sleep(0.02)


def killed_mid_edit(fake: FakeBotApiProcess, config: Path, log: Any, edits_before: int) -> None:
    """Run publish --once until Telegram has taken its edit, then SIGKILL it before the answer."""
    fake.control("inject", method="editMessageText", fault="delay", delay=30, times=1)
    proc = publish(config, log)
    try:
        wait_for(lambda: len(fake.state()["edits"]) > edits_before, 60, "edit at Telegram")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    fake.control("clear_faults")


def message_text(state: dict[str, Any], message_id: int) -> str:
    [message] = [m for m in state["chats"][str(CHAT)]["messages"] if m["message_id"] == message_id]
    return str(message["plain_text"])


def test_an_edit_killed_in_flight_leaves_the_message_correct(tmp_path: Path) -> None:
    db_file = tmp_path / "digest.db"
    archive = tmp_path / "archive"
    archive.mkdir()
    for article_id, title in TITLES.items():
        write_article(archive, article_id, title)
    log = (tmp_path / "digestbot.log").open("ab")
    with FakeBotApiProcess(tmp_path / "fake.json") as fake:
        fake.control("channel", chat_id=CHAT, title="技术")
        fake.control("user", user_id=ADMIN, first_name="Admin")
        channel = {"name": "tech", "chat_id": CHAT, "per_slot": 2, "select": {"categories": ["技术"]}}
        data = config_data(f"sqlite:///{db_file}", base_url=fake.base_url, token=fake.token, channels=[channel],
                           publish={"lease_seconds": LEASE})
        config = write_config(tmp_path / "config.yaml", data)
        db = open_database(f"sqlite:///{db_file}")
        ingest(db, [archive])
        assert publish(config, log).wait(timeout=60) == 0
        [(message_id,)] = query(db_file, "SELECT message_id FROM posts WHERE html LIKE '%tmux%'")

        # 1. Killed after Telegram took the edit: on restart the edit is made again, "not modified", done.
        write_article(archive, 16202, "用 tmux 管理远程终端会话")
        ingest(db, [archive])
        killed_mid_edit(fake, config, log, 0)
        assert query(db_file, "SELECT state FROM post_edits") == [("sending",)]
        assert "远程终端" in message_text(fake.state(), message_id)
        time.sleep(LEASE + 0.5)
        assert publish(config, log).wait(timeout=60) == 0
        assert query(db_file, "SELECT state, attempts FROM post_edits") == [("done", 2)]
        assert query(db_file, f"SELECT edit_count, edit_state FROM posts WHERE message_id = {message_id}") == [
            (1, "done")]

        # 2. Killed again, and corrected once more while it was down: the newest edit wins.
        write_article(archive, 16202, "用 tmux 管理远程终端会话和窗口")
        ingest(db, [archive])
        killed_mid_edit(fake, config, log, 1)
        write_article(archive, 16202, "用 tmux 管理远程会话（最终版）")
        ingest(db, [archive])
        time.sleep(LEASE + 0.5)
        assert publish(config, log).wait(timeout=60) == 0
        db.dispose()
        state = fake.state()
    log.close()

    assert message_text(state, message_id).startswith("用 tmux 管理远程会话（最终版）")
    assert [e["text"].split("</b>")[0].removeprefix("<b>") for e in state["edits"]] == [
        "用 tmux 管理远程终端会话", "用 tmux 管理远程终端会话和窗口", "用 tmux 管理远程会话（最终版）"]
    states = query(db_file, "SELECT state FROM post_edits ORDER BY id")
    assert states == [("done",), ("superseded",), ("done",)]
    assert query(db_file, f"SELECT edit_count, edit_state FROM posts WHERE message_id = {message_id}") == [
        (2, "done")]
    assert len(state["sent"]) == 2  # nothing was sent twice

