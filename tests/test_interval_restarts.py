"""`digestbot run` with `every 1m`, killed and restarted every 40 s: a post per grid minute, none twice.

The defect (#16): interval slots restarted their clock at each start and were never caught up, so
a bot restarted more often than N never posted.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import config_from_mapping
from digests.states import SENT, UNCERTAIN
from digests.store import open_database
from tests.fakebotapi import FakeBotApiProcess
from tests.publishing_helpers import (
    ADMIN,
    RAISED_LIMITS,
    config_data,
    insert_items,
    posts,
    sync,
    write_config,
)

pytestmark = pytest.mark.slow

CHAT = -1004000000001
RUNS = 3
LIFETIME = 40.0  # seconds each run lives before it is killed: shorter than the interval
TITLE = re.compile(r"压力条目 (\d{5}) 号")
DIGESTBOT = Path(sys.executable).parent / "digestbot"
ROOT = Path(__file__).resolve().parent.parent


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def test_a_bot_restarted_more_often_than_its_interval_posts_every_grid_minute_once(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'digest.db'}"
    log_path = tmp_path / "digestbot.log"
    log = log_path.open("ab")
    with FakeBotApiProcess(tmp_path / "fake.json") as fake:
        fake.control("channel", chat_id=CHAT, title="every minute")
        fake.control("user", user_id=ADMIN, first_name="Admin")
        channel = {"name": "minutely", "chat_id": CHAT, "per_slot": 1, "schedule": ["every 1m"],
                   "timezone": "Asia/Shanghai", "select": {"order": "oldest"}}
        data = config_data(db_url, base_url=fake.base_url, token=fake.token, channels=[channel],
                           limits=RAISED_LIMITS)
        config_path = write_config(tmp_path / "config.yaml", data)
        db = open_database(db_url)
        # The channel exists since before the first start: that start owes the newest minute, once.
        sync(db, config_from_mapping(data), now=datetime.now(UTC) - timedelta(minutes=3))
        insert_items(db, 20)

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen([str(DIGESTBOT), "--config", str(config_path), "run"], cwd=ROOT,
                                    stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})

        def planned() -> set[datetime]:
            return {p.slot_at for p in posts(db) if p.slot_at is not None}

        first_start = datetime.now(UTC)
        for _ in range(RUNS):
            proc = start()
            try:
                time.sleep(LIFETIME)
                assert proc.poll() is None, f"digestbot run exited early:\n{log_path.read_text()[-3000:]}"
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        last_kill = datetime.now(UTC)

        # One more start, left running until the minute it started in is planned.
        proc = start()
        try:
            deadline = time.monotonic() + 30
            while minute_of(last_kill) not in planned() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        state = fake.state()
        rows = posts(db)
        db.dispose()
    log.close()

    slots = sorted({p.slot_at for p in rows if p.slot_at is not None})
    assert slots, f"nothing posted:\n{log_path.read_text()[-3000:]}"
    # Every grid minute from the first start (its catch-up: the newest minute, not the three passed
    # since the channel was made) to the last kill, each planned once.
    assert timedelta(0) <= slots[0] - minute_of(first_start) <= timedelta(minutes=1), (slots, first_start)
    assert slots[-1] >= minute_of(last_kill), (slots, last_kill)
    assert slots == [slots[0] + timedelta(minutes=k) for k in range(len(slots))], slots
    assert len(slots) >= 1 + (RUNS * LIFETIME) // 60
    assert Counter(p.slot_at for p in rows) == dict.fromkeys(slots, 1)

    # At Telegram: each item at most once; every post sent (or, killed mid-send, waiting for an admin).
    seen = Counter(int(n) for chat in state["chats"].values() for message in chat["messages"]
                   for n in TITLE.findall(message["plain_text"]))
    assert all(count == 1 for count in seen.values()), seen
    states = Counter(p.state for p in rows)
    assert set(states) <= {SENT, UNCERTAIN} and states[UNCERTAIN] <= RUNS, states
    assert len(seen) >= states[SENT]
