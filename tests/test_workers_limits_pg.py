"""Three workers on one PostgreSQL database keep Telegram's limits together (issue #16 point 3).

The fake Bot API enforces Telegram's limits (20 a minute in a channel, 30 a second overall) and
answers 429 beyond them; each worker has its own engine, Bot and publisher, as separate
`digestbot run` processes would.
"""

from __future__ import annotations

import asyncio
import time
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
from digests.store.models import PENDING, SENT
from tests import fakebotapi
from tests.conftest import fresh_postgres_url
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import insert_items, make_config, posts, settle, sync

fake_bot_api = fakebotapi.fake_bot_api
pytestmark = pytest.mark.postgres

WORKERS = 3


def chat_of(k: int) -> int:
    return -1007000000000 - k


@pytest.fixture
def pg_url(postgres_base_url: str) -> str:
    return fresh_postgres_url(postgres_base_url)


def prepare(url: str, fake: FakeBotApi, channels: int, per_channel: int, **limits: Any) -> Config:
    """``channels`` channels with ``per_channel`` posts each planned and due; Telegram's limits unless given."""
    for k in range(channels):
        fake.add_channel(chat_of(k), title=f"limits {k}")
    config = make_config(url, base_url=fake.base_url, token=fake.token, publish={"concurrency": 3}, limits=limits,
                         channels=[
        {"name": f"l{k}", "chat_id": chat_of(k), "select": {"sources": [f"s{k}"]}} for k in range(channels)])
    db = open_database(url)
    sync(db, config)
    insert_items(db, channels * per_channel, source=lambda i: f"s{i % channels}")
    render = make_renderer()
    for k in range(channels):
        assert len(plan_slot(db, f"l{k}", render, limit=per_channel)) == per_channel
    db.dispose()
    return config


async def run_workers(url: str, config: Config, fake: FakeBotApi, work: Any) -> list[Publisher]:
    """``work(publisher, db)`` in WORKERS publishers at once, each with its own engine and Bot."""
    databases = [open_database(url, migrate=False) for _ in range(WORKERS)]
    try:
        async def worker(db: Database, name: str) -> Publisher:
            async with Bot(fake.token, base_url=fake.base_url, request=HTTPXRequest(connection_pool_size=8)) as bot:
                publisher = Publisher(db, config, bot, worker=name)
                await work(publisher, db)
                return publisher

        return await asyncio.gather(*(worker(db, f"w{n}") for n, db in enumerate(databases)))
    finally:
        for db in databases:
            db.dispose()


def busiest_second(fake: FakeBotApi) -> int:
    arrivals = sorted(m.received_at for m in fake.sent)
    return max((sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals), default=0)


async def test_three_workers_send_at_most_twenty_a_minute_to_one_channel(pg_url: str,
                                                                         fake_bot_api: FakeBotApi) -> None:
    """30 posts due in one channel: the three together send 20, get no 429, and keep 10 for the next minute."""
    config = prepare(pg_url, fake_bot_api, channels=1, per_channel=30)

    async def drain_for_a_while(publisher: Publisher, _db: Database) -> None:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # like the drain job, every 0.2 s
            await publisher.drain()
            await asyncio.sleep(0.2)

    workers = await run_workers(pg_url, config, fake_bot_api, drain_for_a_while)

    assert fake_bot_api.count_429 == 0, fake_bot_api.throttled[:3]
    assert len(fake_bot_api.replies(chat_of(0))) == 20
    assert sum(w.stats.sent for w in workers) == 20 and not any(w.stats.flood_waits for w in workers)
    db = open_database(pg_url, migrate=False)
    try:
        states = [p.state for p in posts(db)]
    finally:
        db.dispose()
    assert states == [SENT] * 20 + [PENDING] * 10  # in order; the rest wait for room, nothing failed


async def test_three_workers_keep_the_global_limit_together(pg_url: str, fake_bot_api: FakeBotApi) -> None:
    """48 posts in 24 channels, three workers of three senders each: all sent, no 429.

    The global limit is lowered to 8 a second here (in the config and the fake): three workers
    in one test process reach well over that together, not 30 a second.
    """
    fake_bot_api.limits.global_limit = 8
    config = prepare(pg_url, fake_bot_api, channels=24, per_channel=2, global_per_second=8)
    workers = await run_workers(pg_url, config, fake_bot_api, lambda publisher, db: settle(publisher, db, timeout=60))

    assert fake_bot_api.count_429 == 0, fake_bot_api.throttled[:3]
    assert len(fake_bot_api.sent) == 48 and sum(w.stats.sent for w in workers) == 48
    assert busiest_second(fake_bot_api) <= 8
    assert sum(1 for w in workers if w.stats.sent) >= 2  # they shared the work, not one took it all
