"""Many channels' slots firing at the same minute: planned together, each slot once, each post sent once."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot import scheduler
from bot.publisher import Publisher
from digests.errors import NotFoundError
from digests.store import open_database
from digests.store.channels import active_channels
from digests.store.db import Database
from digests.store.models import SENT, utcnow
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import (
    RAISED_LIMITS,
    insert_items,
    make_config,
    posts,
    running_application,
    sync,
)

fake_bot_api = fakebotapi.fake_bot_api

CHANNELS = 30
PER_SLOT = 2
TITLE = re.compile(r"压力条目 \d{5} 号")


def chat_of(k: int) -> int:
    return -1007000000000 - k


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
    yield database
    database.dispose()


async def test_slots_fired_together_are_each_planned_once_and_sent_when_their_job_returns(
        db: Database, fake_bot_api: FakeBotApi) -> None:
    channels: list[dict[str, Any]] = [
        {"name": f"f{k:02d}", "chat_id": chat_of(k), "per_slot": PER_SLOT, "select": {"sources": [f"s{k}"]},
         **({"mode": "digest"} if k % 3 == 0 else {})} for k in range(CHANNELS)]
    for k in range(CHANNELS):
        fake_bot_api.add_channel(chat_of(k), title=f"fire {k}")
    config = make_config(db.url, base_url=fake_bot_api.base_url, token=fake_bot_api.token, channels=channels,
                         limits=RAISED_LIMITS)
    sync(db, config)
    insert_items(db, CHANNELS * PER_SLOT * 2, source=lambda i: f"s{i % CHANNELS}")
    slot = utcnow().replace(second=0, microsecond=0)

    async with running_application(config, db) as application:
        publisher: Publisher = application.bot_data["publisher"]

        async def job(name: str) -> list[str]:
            """A slot's job; what its channel shows once the job is done."""
            await scheduler.run_slot(application, name, slot)
            return [p.state for p in posts(db) if p.channel_id == channel_ids[name]]

        with db.session() as session:
            channel_ids = {c.name: c.id for c in active_channels(session)}
        # Every channel's job at the same minute, some twice (a job fired again), one for a name now gone.
        names = [c["name"] for c in channels] + [c["name"] for c in channels[:5]]
        states, gone = await asyncio.gather(asyncio.gather(*(job(name) for name in names)),
                                            publisher.run_slot("no_such_channel", slot_at=slot),
                                            return_exceptions=True)
    assert isinstance(gone, NotFoundError)
    assert not isinstance(states, BaseException)
    # When a slot's job returns, its posts are sent.
    assert all(channel_states and set(channel_states) == {SENT} for channel_states in states)
    done = posts(db)
    per_slot = Counter(p.channel_id for p in done)
    assert per_slot == {channel_ids[c["name"]]: 1 if k % 3 == 0 else PER_SLOT for k, c in enumerate(channels)}
    titles = Counter(t for m in fake_bot_api.sent for t in TITLE.findall(m.plain_text))
    assert len(titles) == CHANNELS * PER_SLOT and set(titles.values()) == {1}
