"""Several workers on one PostgreSQL database: every item reaches its channel exactly once."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.publisher import Publisher
from digests.config import Config
from digests.formatting.render import make_renderer
from digests.publishing.planning import plan_slot
from digests.store import open_database
from digests.store.db import Database
from digests.store.models import SENT, utcnow
from digests.store.posts import claim_next, record_sent
from tests import fakebotapi
from tests.conftest import fresh_postgres_url
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import (
    RAISED_LIMITS,
    config_data,
    insert_items,
    make_config,
    posts,
    settle,
    sync,
    write_config,
)

fake_bot_api = fakebotapi.fake_bot_api
pytestmark = pytest.mark.postgres

CHANNELS = 4
PER_CHANNEL = 12
PER_SLOT = 4
TITLE = re.compile(r"压力条目 \d{5} 号")
ROOT = Path(__file__).resolve().parent.parent


def chat_of(k: int) -> int:
    return -1004000000000 - k


@pytest.fixture
def pg_url(postgres_base_url: str) -> str:
    return fresh_postgres_url(postgres_base_url)


@pytest.fixture
def fake(fake_bot_api: FakeBotApi) -> FakeBotApi:
    fake_bot_api.limits.global_limit = None  # two workers, each with its own limiter
    fake_bot_api.limits.group_limit = None
    for k in range(CHANNELS):
        fake_bot_api.add_channel(chat_of(k), title=f"worker {k}")
    return fake_bot_api


def channels() -> list[dict[str, Any]]:
    return [{"name": f"w{k}", "chat_id": chat_of(k), "per_slot": PER_SLOT, "select": {"sources": [f"s{k}"]}}
            for k in range(CHANNELS)]


def prepare(url: str, fake: FakeBotApi, **publish: Any) -> Config:
    config = make_config(url, base_url=fake.base_url, token=fake.token, channels=channels(), limits=RAISED_LIMITS,
                         publish=publish)
    db = open_database(url)
    sync(db, config)
    insert_items(db, CHANNELS * PER_CHANNEL, source=lambda i: f"s{i % CHANNELS}")
    db.dispose()
    return config


def titles_at(fake: FakeBotApi) -> Counter[str]:
    counts: Counter[str] = Counter()
    for message in fake.sent:
        counts.update(TITLE.findall(message.plain_text))
    return counts


async def test_two_publishers_firing_the_same_slots_post_each_item_once(pg_url: str, fake: FakeBotApi) -> None:
    """Both workers plan and send the same slots at the same moments; SKIP LOCKED claims keep it single."""
    config = prepare(pg_url, fake, concurrency=3)
    slots = [utcnow().replace(second=0, microsecond=0) + timedelta(hours=h) for h in range(PER_CHANNEL // PER_SLOT)]
    databases = [open_database(pg_url, migrate=False) for _ in range(2)]
    try:
        async def worker(db: Database, name: str, reverse: bool) -> Publisher:
            request = HTTPXRequest(connection_pool_size=8)
            async with Bot(fake.token, base_url=fake.base_url, request=request) as bot:
                publisher = Publisher(db, config, bot, worker=name)
                order = [f"w{k}" for k in range(CHANNELS)]
                for slot in slots:
                    for channel in reversed(order) if reverse else order:
                        await publisher.run_slot(channel, slot_at=slot)
                await settle(publisher, db)
                return publisher

        first, second = await asyncio.gather(worker(databases[0], "a", False), worker(databases[1], "b", True))
    finally:
        for db in databases:
            db.dispose()

    total = CHANNELS * PER_CHANNEL
    assert titles_at(fake) == Counter({title: 1 for title in titles_at(fake)})
    assert len(titles_at(fake)) == total
    db = open_database(pg_url, migrate=False)
    try:
        done = posts(db)
    finally:
        db.dispose()
    assert [p.state for p in done] == [SENT] * total  # single mode: a post per item
    # Each slot planned once per channel, however many workers fired it.
    assert Counter((p.channel_id, p.slot_at) for p in done) == {
        (channel_id, slot): PER_SLOT for channel_id in {p.channel_id for p in done} for slot in slots}
    # Both workers did part of the sending.
    assert first.stats.sent + second.stats.sent == total
    assert first.stats.sent and second.stats.sent
    # Each chat's items arrive in the channel's order, whoever sent them.
    for k in range(CHANNELS):
        numbers = [TITLE.findall(m.plain_text)[0] for m in fake.replies(chat_of(k))]
        assert numbers == sorted(numbers) and len(numbers) == PER_CHANNEL


def test_concurrent_claims_never_share_a_post_or_a_channel(pg_url: str, fake: FakeBotApi) -> None:
    """Four threads claiming at once (two engines): each post claimed once, one in flight per channel."""
    prepare(pg_url, fake)
    setup = open_database(pg_url, migrate=False)
    render = make_renderer()
    for k in range(CHANNELS):
        assert len(plan_slot(setup, f"w{k}", render, limit=PER_CHANNEL)) == PER_CHANNEL
    setup.dispose()

    databases = [open_database(pg_url, migrate=False) for _ in range(2)]
    claimed: list[int] = []
    in_flight: set[int] = set()
    violations: list[str] = []
    lock = threading.Lock()

    def claimer(db: Database, name: str) -> None:
        idle = 0
        while idle < 20:
            got = claim_next(db, name, lease=timedelta(seconds=60), limit=3)
            if not got:
                idle += 1
                continue
            idle = 0
            with lock:
                for post in got:
                    if post.channel_id in in_flight:
                        violations.append(f"{name} took post {post.id} while its channel was in flight")
                    in_flight.add(post.channel_id)
                    claimed.append(post.id)
            for post in got:
                with lock:
                    in_flight.discard(post.channel_id)
                assert record_sent(db, post.id, name, message_id=post.id)

    threads = [threading.Thread(target=claimer, args=(databases[n % 2], f"t{n}")) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for db in databases:
        db.dispose()

    assert violations == []
    assert len(claimed) == len(set(claimed)) == CHANNELS * PER_CHANNEL


def test_two_publish_once_processes_never_double_post(pg_url: str, fake: FakeBotApi, tmp_path: Path) -> None:
    """Two `digestbot publish --once` at the same moment: two slots' worth of items, each once."""
    data = config_data(pg_url, base_url=fake.base_url, token=fake.token, channels=channels(),
                       limits=RAISED_LIMITS)
    prepare(pg_url, fake)
    path = write_config(tmp_path / "config.yaml", data)
    digestbot = Path(sys.executable).parent / "digestbot"
    procs = [subprocess.Popen([str(digestbot), "--config", str(path), "publish", "--once"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs

    counts = titles_at(fake)
    assert set(counts.values()) == {1}
    assert len(counts) == 2 * CHANNELS * PER_SLOT
    for k in range(CHANNELS):
        numbers = [TITLE.findall(m.plain_text)[0] for m in fake.replies(chat_of(k))]
        assert numbers == sorted(numbers) and len(numbers) == 2 * PER_SLOT
