"""Telegram misbehaving: flood waits, 5xx, lost answers, a kicked bot, HTML it cannot parse."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.publisher import Publisher
from digests.config import Config
from digests.publishing.planning import plan_slot
from digests.publishing.review import resolve_post
from digests.store import open_database
from digests.store.channels import get_channel, set_paused
from digests.store.db import Database
from digests.store.models import PENDING, SENT, UNCERTAIN, Channel, Post
from digests.store.posts import read_counter
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import (
    ADMIN,
    crash_title,
    insert_items,
    make_config,
    posts,
    running_application,
    settle,
    sync,
)

fake_bot_api = fakebotapi.fake_bot_api

# PTB 22 warns on every RetryAfter that retry_after will become a timedelta.
pytestmark = pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:telegram.warnings.PTBDeprecationWarning")

CHATS = {"alpha": -1002000000001, "beta": -1002000000002, "gamma": -1002000000003}
PER_CHANNEL = 6
TITLE = re.compile(r"压力条目 \d{5} 号")


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
    yield database
    database.dispose()


@pytest.fixture
def fake(fake_bot_api: FakeBotApi) -> FakeBotApi:
    for name, chat_id in CHATS.items():
        fake_bot_api.add_channel(chat_id, title=name)
    fake_bot_api.add_user(ADMIN, first_name="Admin")
    return fake_bot_api


def setup(db: Database, fake: FakeBotApi, names: tuple[str, ...] = tuple(CHATS), *, per_channel: int = PER_CHANNEL,
          **publish: Any) -> Config:
    """A channel per name, each taking its own ``per_channel`` items (by source) in one slot."""
    channels = [{"name": name, "chat_id": CHATS[name], "per_slot": per_channel, "select": {"sources": [name]}}
                for name in names]
    config = make_config(db.url, base_url=fake.base_url, token=fake.token, channels=channels,
                         telegram={"request_timeout": 1}, publish=publish)
    sync(db, config)
    for k, name in enumerate(names):
        insert_items(db, per_channel, start=k * 100, source=lambda _i, name=name: name)
    return config


def title_counts(fake: FakeBotApi, *, fault: str | None | bool = False) -> Counter[str]:
    """How often each item's title reached a channel (optionally only messages with this fault mark)."""
    counts: Counter[str] = Counter()
    chats = set(CHATS.values())
    for message in fake.sent:
        if message.chat_id in chats and (fault is False or message.fault == fault):
            counts.update(TITLE.findall(message.plain_text))
    return counts


def expected_titles(names: tuple[str, ...] = tuple(CHATS)) -> set[str]:
    order = list(CHATS)
    return {crash_title(order.index(n) * 100 + i) for n in names for i in range(PER_CHANNEL)}


def publisher_of(application: Any) -> Publisher:
    return application.bot_data["publisher"]


# ---------------------------------------------------------------------------------------------


async def test_flood_waits_and_server_errors_lose_and_double_nothing(db: Database, fake: FakeBotApi) -> None:
    """429s (retry_after 1-2 s) and 5xx bursts: every post arrives once, nothing before retry_after."""
    config = setup(db, fake)
    for chat_id in CHATS.values():
        fake.inject("sendMessage", "429", chat_id=chat_id, retry_after=2 if chat_id % 2 else 1, times=1)
    fake.inject("sendMessage", "5xx", status=502, times=3)
    fake.inject("sendMessage", "5xx", status=500, times=2, probability=0.3)

    async with running_application(config, db) as application:
        publisher = publisher_of(application)
        for name in CHATS:
            await publisher.run_slot(name)
        await settle(publisher, db, timeout=40)

    assert title_counts(fake) == Counter({title: 1 for title in expected_titles()})
    assert [p.state for p in posts(db)] == [SENT] * len(CHATS) * PER_CHANNEL
    throttles = [t for t in fake.throttled if t.reason == "injected"]
    assert len(throttles) == len(CHATS)
    assert fake.early_retries == 0
    # The publisher holds every send after a 429, not just that chat's: no request inside any wait.
    sends = [r.received_at for r in fake.requests if r.method == "sendMessage"]
    for throttle in throttles:
        assert not [t for t in sends if throttle.at < t < throttle.at + throttle.retry_after - 0.01]
    assert sum(1 for r in fake.requests if r.status and r.status >= 500) >= 3
    assert publisher.stats.flood_waits == len(CHATS)
    # Each chat's posts still arrive in the order they were planned.
    for chat_id in CHATS.values():
        numbers = [m.plain_text.split()[1] for m in fake.replies(chat_id)]
        assert numbers == sorted(numbers)


async def test_lost_answers_become_uncertain_until_an_admin_resends(db: Database, fake: FakeBotApi) -> None:
    """A send whose answer never came (timeout, dropped connection) is uncertain: never resent silently."""
    config = setup(db, fake, ("alpha",))
    alpha = CHATS["alpha"]
    fake.inject("sendMessage", "delay", chat_id=alpha, delay=2.5, times=1)  # request_timeout is 1 s
    fake.inject("sendMessage", "drop_after_accept", chat_id=alpha, times=1)

    async with running_application(config, db) as application:
        publisher = publisher_of(application)
        await publisher.run_slot("alpha")
        await settle(publisher, db)
        await asyncio.sleep(2)  # the delayed answer arrives too late; more drains change nothing
        await settle(publisher, db)

        uncertain = [p for p in posts(db) if p.state == UNCERTAIN]
        assert len(uncertain) == 2
        assert [p.state for p in posts(db)].count(SENT) == PER_CHANNEL - 2
        # Telegram did accept both: one copy each, and no silent second one.
        faulted = title_counts(fake, fault="delay") + title_counts(fake, fault="drop_after_accept")
        assert sum(faulted.values()) == 2
        assert title_counts(fake) == Counter({title: 1 for title in expected_titles(("alpha",))})
        # The admins are told of each, with the command that lists them (in zh_CN: they chose no language).
        notices = [m.plain_text for m in fake.replies(ADMIN)]
        assert len(notices) == 2
        for post in uncertain:
            assert any(f"帖子 {post.id} " in text and "/uncertain" in text for text in notices)

        for post in uncertain:
            resolve_post(db, post.id, action="resend", actor=f"tg:{ADMIN}")
        await settle(publisher, db)

    assert [p.state for p in posts(db)] == [SENT] * PER_CHANNEL
    resent = {p.id: p for p in posts(db)}
    for post in uncertain:
        again = resent[post.id]
        # The admin's resend went out as a new message, recorded with its message id.
        [message] = [m for m in fake.replies(alpha) if m.message_id == again.message_id]
        assert message.fault is None
        assert TITLE.findall(message.plain_text)[0] in faulted
    assert title_counts(fake, fault=None) == Counter({title: 1 for title in expected_titles(("alpha",))})


async def test_bot_removed_from_a_channel_pauses_it_and_tells_the_admins(db: Database, fake: FakeBotApi) -> None:
    """403: that channel pauses with its posts kept, the admins hear of it, the others go on."""
    config = setup(db, fake, ("alpha", "beta"))
    fake.kick(CHATS["alpha"])

    async with running_application(config, db) as application:
        publisher = publisher_of(application)
        await publisher.run_slot("alpha")
        await publisher.run_slot("beta")
        await settle(publisher, db)

        with db.session() as session:
            alpha = get_channel(session, "alpha")
            assert alpha.paused and "kicked" in (alpha.paused_reason or "")
        alpha_posts = posts(db, channel_id=alpha.id)
        assert [p.state for p in alpha_posts] == [PENDING] * PER_CHANNEL
        assert fake.replies(CHATS["alpha"]) == []
        assert title_counts(fake) == Counter({title: 1 for title in expected_titles(("beta",))})
        [notice] = [m.plain_text for m in fake.replies(ADMIN)]
        assert "频道 alpha 已暂停" in notice and "/resume alpha" in notice

        # The admin adds the bot back and resumes: the kept posts go out, in order, once.
        fake.unkick(CHATS["alpha"])
        with db.session() as session:
            set_paused(session, "alpha", False, actor=f"tg:{ADMIN}")
        await settle(publisher, db)

    assert title_counts(fake) == Counter({title: 1 for title in expected_titles(("alpha", "beta"))})
    assert [TITLE.findall(m.plain_text)[0] for m in fake.replies(CHATS["alpha"])] == [
        crash_title(i) for i in range(PER_CHANNEL)]


async def test_html_telegram_cannot_parse_is_resent_as_plain_text(db: Database, fake: FakeBotApi) -> None:
    """400 can't parse entities: the post goes out as plain text, once, and says so in its record."""
    config = setup(db, fake, ("alpha",))
    async with running_application(config, db) as application:
        publisher = publisher_of(application)
        planned = await asyncio.to_thread(plan_slot, db, "alpha", publisher.render)
        broken = planned[0]
        with db.session() as session:
            session.execute(update(Post).where(Post.id == broken.id)
                            .values(html=f"<b>{crash_title(0)} unclosed &amp; broken"))
        await settle(publisher, db)

    done = {p.id: p for p in posts(db)}
    assert [p.state for p in done.values()] == [SENT] * PER_CHANNEL
    assert done[broken.id].plain_fallback and "parse" in (done[broken.id].error or "")
    assert not any(p.plain_fallback for i, p in done.items() if i != broken.id)
    refused = [r for r in fake.calls("sendMessage") if r.status == 400]
    assert len(refused) == 1 and refused[0].params["parse_mode"] == "HTML"
    first = fake.replies(CHATS["alpha"])[0]
    assert first.message_id == done[broken.id].message_id
    assert (first.text, first.parse_mode, first.entities) == (f"{crash_title(0)} unclosed & broken", None, [])
    assert title_counts(fake) == Counter({title: 1 for title in expected_titles(("alpha",))})


async def test_flood_wait_costs_no_attempt_and_keeps_the_post(db: Database, fake: FakeBotApi) -> None:
    """A 429 costs no attempt and loses no post: the whole publisher waits retry_after, then sends it."""
    config = setup(db, fake, ("alpha",))
    fake.inject("sendMessage", "429", chat_id=CHATS["alpha"], retry_after=2, times=1)
    async with running_application(config, db) as application:
        publisher = publisher_of(application)
        started = time.monotonic()
        await publisher.run_slot("alpha")
        await settle(publisher, db)
        assert time.monotonic() - started >= 2
    [throttle] = fake.throttled
    first = fake.replies(CHATS["alpha"])[0]
    assert first.received_at >= throttle.at + 2
    assert fake.early_retries == 0
    assert title_counts(fake) == Counter({title: 1 for title in expected_titles(("alpha",))})
    done = posts(db)
    assert [(p.state, p.attempts) for p in done] == [(SENT, 1)] * PER_CHANNEL
    with db.session() as session:
        assert read_counter(session, "flood_waits") == 1
        assert session.scalar(select(Channel.paused).where(Channel.name == "alpha")) is False


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_telegram_limits_are_kept_without_a_single_429(db: Database, fake: FakeBotApi,
                                                             concurrency: int) -> None:
    """60 posts in three channels against Telegram's limits (30/s, 20/min a channel): no 429 at all."""
    config = setup(db, fake, per_channel=20, concurrency=concurrency)
    async with running_application(config, db) as application:
        publisher = publisher_of(application)
        for name in CHATS:
            await asyncio.to_thread(plan_slot, db, name, publisher.render)
        await settle(publisher, db)
    assert fake.count_429 == 0 and publisher.stats.flood_waits == 0
    arrivals = sorted(m.received_at for m in fake.sent if m.chat_id in CHATS.values())
    assert len(arrivals) == 60
    assert max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals) <= 30
