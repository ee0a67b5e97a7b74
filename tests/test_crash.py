"""`digestbot run` killed with SIGKILL again and again while it publishes: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import config_from_mapping
from digests.formatting.render import make_renderer
from digests.publishing.planning import plan_slot
from digests.store import open_database
from digests.store.models import SENT, UNCERTAIN, Item
from tests.fakebotapi import FakeBotApiProcess
from tests.publishing_helpers import (
    ADMIN,
    RAISED_LIMITS,
    config_data,
    insert_items,
    sync,
    write_config,
)

pytestmark = pytest.mark.slow

ITEMS = 500
CHANNELS = 4  # a post left sending blocks only its own channel until its lease ends
KILLS = 20
SEED = 20241122
LEASE = 5  # the shortest lease config allows
TITLE = re.compile(r"压力条目 (\d{5}) 号")
DIGESTBOT = Path(sys.executable).parent / "digestbot"
ROOT = Path(__file__).resolve().parent.parent


def chat_of(k: int) -> int:
    return -1003000000000 - k


def sent_count(db_file: Path) -> int:
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM posts WHERE state = ?", (SENT,)).fetchone()[0]


def unsettled_count(db_file: Path) -> int:
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM posts WHERE state IN ('pending', 'retry', 'sending')").fetchone()[0]


def wait_for(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"digestbot run exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        time.sleep(0.02)


def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    db_file = tmp_path / "digest.db"
    log = (tmp_path / "digestbot.log").open("ab")
    rng = random.Random(SEED)
    with FakeBotApiProcess(tmp_path / "fake.json", extra_args=["--global-limit", "none",
                                                                "--group-limit", "none"]) as fake:
        for k in range(CHANNELS):
            fake.control("channel", chat_id=chat_of(k), title=f"crash {k}")
        fake.control("user", user_id=ADMIN, first_name="Admin")
        channels = [{"name": f"crash{k}", "chat_id": chat_of(k), "per_slot": 50, "schedule": ["0 0 1 1 *"],
                     "select": {"sources": [f"src{k}"]}} for k in range(CHANNELS)]
        data = config_data(f"sqlite:///{db_file}", base_url=fake.base_url, token=fake.token, channels=channels,
                           limits=RAISED_LIMITS, telegram={"poll_commands": True},
                           publish={"lease_seconds": LEASE, "drain_interval_seconds": 0.2, "concurrency": 1})
        config_path = write_config(tmp_path / "config.yaml", data)

        # Every item planned up front into pending posts: the bot's drain job sends them.
        db = open_database(f"sqlite:///{db_file}")
        sync(db, config_from_mapping(data))
        insert_items(db, ITEMS, source=lambda i: f"src{i % CHANNELS}")
        render = make_renderer()
        for k in range(CHANNELS):
            assert len(plan_slot(db, f"crash{k}", render, limit=ITEMS)) == ITEMS // CHANNELS
        db.dispose()

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen([str(DIGESTBOT), "--config", str(config_path), "run"], cwd=ROOT,
                                    stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})

        kills = 0
        for _ in range(KILLS):
            before = sent_count(db_file)
            if before + CHANNELS >= ITEMS:
                break
            proc = start()
            try:
                # Kill mid-stream: once this run has sent something, after a random moment more.
                wait_for(lambda b=before: sent_count(db_file) > b, 60, "progress", proc)
                time.sleep(rng.uniform(0.0, 0.25))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            kills += 1
        assert kills >= 20, f"only {kills} kills before the queue ran out: give the test more items"

        proc = start()
        try:
            # Posts left sending become uncertain once their lease is over; the rest goes out.
            wait_for(lambda: unsettled_count(db_file) == 0, 120, "settled queue", proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        state = fake.state()
    log.close()

    listed = subprocess.run([str(DIGESTBOT), "--config", str(config_path), "deliveries", "--json"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    rows = json.loads(listed.stdout)
    by_item: dict[int, dict[str, Any]] = {}
    for row in rows:
        for item_id in row["item_ids"]:
            assert item_id not in by_item, f"item {item_id} planned twice"
            by_item[item_id] = row
    assert len(by_item) == ITEMS

    # What reached Telegram, per item number (titles are unique), with its message id.
    seen: Counter[int] = Counter()
    message_of: dict[int, tuple[int, int]] = {}
    for chat in state["chats"].values():
        for message in chat["messages"]:
            for number in TITLE.findall(message["plain_text"]):
                seen[int(number)] += 1
                message_of[int(number)] = (chat["id"], message["message_id"])
    doubled = {n: c for n, c in seen.items() if c > 1}
    assert doubled == {}, f"posted twice: {doubled}"

    states = Counter(row["state"] for row in rows)
    assert set(states) <= {SENT, UNCERTAIN}, states
    uncertain = [row for row in rows if row["state"] == UNCERTAIN]
    assert len(uncertain) <= kills, f"{len(uncertain)} uncertain after {kills} kills"

    db = open_database(f"sqlite:///{db_file}")
    with db.session() as session:
        numbers = {item_id: int(TITLE.findall(title)[0])
                   for item_id, title in session.execute(select(Item.id, Item.title))}
    db.dispose()
    for item_id, row in by_item.items():
        number = numbers[item_id]
        if row["state"] == SENT:
            # Sent means Telegram has it exactly once, under the message id we recorded.
            assert seen[number] == 1, f"item {number} recorded sent but not at Telegram"
            assert message_of[number] == (chat_of(int(row["channel"].removeprefix("crash"))), row["message_id"])
        else:
            # Uncertain: at Telegram at most once, waiting for an admin; never missing unannounced.
            assert seen[number] <= 1
    missing = [n for n in numbers.values() if seen[n] == 0]
    assert all(by_item[i]["state"] == UNCERTAIN for i, n in numbers.items() if n in missing)
    assert len(seen) + len(missing) == ITEMS
