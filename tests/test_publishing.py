"""End to end: archive -> slots fired through the bot's JobQueue -> messages at the fake Bot API."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from bot import scheduler
from bot.cli import main as digestbot
from bot.config import config_from_mapping
from digests.ingest.pipeline import ingest
from digests.publishing import slots
from digests.store import open_database
from digests.store.db import Database
from digests.store.models import DRY_RUN, SENT, Channel, Item, Post, utcnow
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi, SentMessage
from tests.publishing_helpers import (
    ADMIN,
    COLUMN_ONE,
    COLUMN_TWO,
    RAISED_LIMITS,
    TECH_TITLE,
    Story,
    column_document,
    config_data,
    make_config,
    posts,
    quiet_hours_around,
    running_application,
    sync,
    titles_in,
    write_archive,
    write_config,
)

fake_bot_api = fakebotapi.fake_bot_api

COLUMN_CHAT, TECH_CHAT = -1001000000001, -1001000000003
LATEST_USERNAME = "hc_latest"
SHANGHAI = "Asia/Shanghai"
ALL_TITLES = [s.title for s in COLUMN_ONE + COLUMN_TWO] + [TECH_TITLE]


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
    yield database
    database.dispose()


@pytest.fixture
def archived(db: Database, tmp_path: Path) -> Database:
    """The tiny archive ingested: column #1 (03-01), column #2 (03-02), a 技术 article (03-03)."""
    report = ingest(db, [write_archive(tmp_path / "archive")])
    assert (report.items_new, report.documents_failed) == (7, 0)
    return db


@pytest.fixture
def fake(fake_bot_api: FakeBotApi) -> FakeBotApi:
    fake_bot_api.add_channel(COLUMN_CHAT, title="硬核观察")
    fake_bot_api.add_channel(-1001000000002, username=LATEST_USERNAME, title="最新")
    fake_bot_api.add_channel(TECH_CHAT, title="技术")
    fake_bot_api.add_user(ADMIN, first_name="Admin")
    return fake_bot_api


def three_channels(*, tech_quiet: bool) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {"name": "column", "chat_id": COLUMN_CHAT, "mode": "digest", "per_slot": 3,
         "schedule": ["0 9 * * *", "0 18 * * *"], "timezone": SHANGHAI,
         "quiet_hours": quiet_hours_around(now, SHANGHAI, inside=False),
         "select": {"categories": ["硬核观察"], "order": "oldest"}},
        {"name": "latest", "chat_id": f"@{LATEST_USERNAME}", "mode": "single", "per_slot": 2, "photo": True,
         "silent": True, "schedule": ["every 2h"], "select": {"categories": ["硬核观察"], "order": "newest"}},
        {"name": "tech", "chat_id": TECH_CHAT, "mode": "single", "per_slot": 1, "schedule": ["30 12 * * 1-5"],
         "timezone": SHANGHAI, "quiet_hours": quiet_hours_around(now, SHANGHAI, inside=tech_quiet),
         "select": {"categories": ["技术"]}},
    ]


def message_titles(messages: list[SentMessage]) -> list[list[str]]:
    return [titles_in(m.plain_text, ALL_TITLES) for m in messages]


def entity_types(message: SentMessage) -> set[str]:
    return {e["type"] for e in message.entities}


# ---------------------------------------------------------------------------------------------


async def test_slot_jobs_post_each_channel_in_its_order_and_format(archived: Database, fake: FakeBotApi) -> None:
    """Three channels, their slot jobs fired: digests oldest first, photos newest first, quiet hours kept."""
    db = archived
    config = make_config(db.url, base_url=fake.base_url, token=fake.token, channels=three_channels(tech_quiet=True))
    errors: list[BaseException] = []

    async with running_application(config, db) as application:
        async def collect(update: object, context: Any) -> None:
            errors.append(context.error)

        application.add_error_handler(collect)
        jobs = {job.name: job for job in application.job_queue.jobs()}
        # One job per schedule entry with a stable id, the drain job, the missed-slot run, the
        # scheduler's heartbeat and the start-up line per channel.
        assert set(jobs) == {"slot:column:0", "slot:column:1", "slot:latest:0", "slot:tech:0", "drain",
                             "missed-slots", "heartbeat", "startup-log"}
        assert all(job.job.id == name for name, job in jobs.items() if name.startswith("slot:"))
        column_trigger = jobs["slot:column:1"].job.trigger
        assert isinstance(column_trigger, CronTrigger)
        assert str(column_trigger.timezone) == SHANGHAI
        fields = {f.name: str(f) for f in column_trigger.fields}
        assert (fields["hour"], fields["minute"]) == ("18", "0")
        latest_trigger = jobs["slot:latest:0"].job.trigger
        assert isinstance(latest_trigger, scheduler.GridTrigger) and latest_trigger.interval == timedelta(hours=2)
        # every 2h fires on even local hours, whenever the bot started
        upcoming = latest_trigger.get_next_fire_time(None, utcnow())
        assert upcoming is not None and upcoming - utcnow() <= timedelta(hours=2)
        assert (upcoming.astimezone(ZoneInfo(SHANGHAI)).hour % 2, upcoming.minute, upcoming.second) == (0, 0, 0)
        assert isinstance(jobs["slot:tech:0"].job.trigger, CronTrigger)

        for name in ("slot:column:0", "slot:latest:0", "slot:tech:0"):
            await jobs[name].run(application)
        # The next slots of the two active channels (the tech channel is in its quiet hours).
        later = utcnow() + timedelta(hours=3)
        await scheduler.run_slot(application, "column", later.replace(second=0, microsecond=0))
        await scheduler.run_slot(application, "latest", slots.firing_slot("every 2h", later, SHANGHAI))
        await scheduler.run_slot(application, "tech", later.replace(second=0, microsecond=0))
    assert errors == []

    column = fake.replies(COLUMN_CHAT)
    assert [m.method for m in column] == ["sendMessage", "sendMessage"]
    assert [m.plain_text.splitlines()[0] for m in column] == ["硬核观察 #1", "硬核观察 #2"]
    assert message_titles(column) == [[s.title for s in COLUMN_ONE], [s.title for s in COLUMN_TWO]]
    first = column[0]
    assert {"bold", "text_link", "blockquote"} <= entity_types(first)
    assert "老王点评：多年磨一剑。" in first.plain_text
    assert {e["url"] for e in first.entities if e["type"] == "text_link"} == {
        f"https://source.example.org/16001/{k}" for k in (1, 2, 3)}
    assert not any(m.disable_notification for m in column)
    assert first.link_preview_options == {"is_disabled": True}

    latest = fake.replies(f"@{LATEST_USERNAME}")
    # Newest first: the 03-02 column before the 03-01 one (same day: later in the article first);
    # the newer 技术 article is not in this channel's categories.
    assert message_titles(latest) == [["开源基金会发布年度报告"], ["编译器支持新语言标准"], ["发行版放弃旧架构"],
                                      ["浏览器默认启用新协议"]]
    assert [m.method for m in latest] == ["sendPhoto"] * 4
    assert [m.photo["value"] for m in latest if m.photo] == [
        "https://linux.cn/data/attachment/album/2024/16002-3.jpg",
        "https://linux.cn/data/attachment/album/2024/16002-2.jpg",
        "https://linux.cn/data/attachment/album/2024/16002-1.jpg",
        "https://linux.cn/data/attachment/album/2024/16001-3.jpg",
    ]
    assert all(m.disable_notification for m in latest)
    assert all(m.caption and "老王点评" in m.plain_text for m in latest)

    assert fake.replies(TECH_CHAT) == []
    with db.session() as session:
        tech_id = session.scalar(select(Channel.id).where(Channel.name == "tech"))
    assert posts(db, channel_id=tech_id) == []

    # Every post is recorded as sent with the message id Telegram gave it.
    recorded = {(p.state, p.message_id) for p in posts(db)}
    assert recorded == {(SENT, m.message_id) for m in column} | {(SENT, m.message_id) for m in latest}
    assert fake.count_429 == 0


async def test_quiet_channel_posts_once_its_quiet_hours_are_changed(archived: Database, fake: FakeBotApi) -> None:
    """A slot in quiet hours is skipped; after the operator moves the quiet hours, the next slot posts."""
    db = archived
    data = config_data(db.url, base_url=fake.base_url, token=fake.token, channels=three_channels(tech_quiet=True))
    config = config_from_mapping(data)
    slot = utcnow().replace(second=0, microsecond=0)
    async with running_application(config, db) as application:
        await scheduler.run_slot(application, "tech", slot)
        assert fake.replies(TECH_CHAT) == []
        data["channels"][2]["quiet_hours"] = quiet_hours_around(utcnow(), SHANGHAI, inside=False)
        sync(db, config_from_mapping(data))
        await scheduler.run_slot(application, "tech", slot)
    [message] = fake.replies(TECH_CHAT)
    assert message.plain_text.startswith(TECH_TITLE)
    assert "#技术" in message.plain_text


async def test_slot_fired_twice_posts_once(archived: Database, fake: FakeBotApi) -> None:
    """The same slot fired again (a restart inside it, or a second worker) plans nothing more."""
    db = archived
    config = make_config(db.url, base_url=fake.base_url, token=fake.token, channels=three_channels(tech_quiet=True))
    slot = utcnow().replace(second=0, microsecond=0)
    async with running_application(config, db) as application:
        await scheduler.run_slot(application, "column", slot)
        await asyncio.gather(*(scheduler.run_slot(application, "column", slot) for _ in range(3)))
        await scheduler.run_slot(application, "column", slot)
    [digest] = fake.replies(COLUMN_CHAT)
    assert digest.plain_text.startswith("硬核观察 #1")
    with db.session() as session:
        column = session.scalar(select(Channel).where(Channel.name == "column"))
        assert column is not None and column.digest_counter == 1
        assert len(list(session.scalars(select(Post.id)))) == 1


async def test_missed_slots_run_once_on_start(archived: Database, fake: FakeBotApi) -> None:
    """Three slots passed while the bot was down: starting it posts the newest one, once."""
    db = archived
    now = utcnow()
    local = now.astimezone(ZoneInfo(SHANGHAI))
    minutes = sorted({(local - timedelta(minutes=back)).minute for back in (50, 35, 20)})
    channel = {"name": "latest", "chat_id": f"@{LATEST_USERNAME}", "per_slot": 2, "timezone": SHANGHAI,
               "schedule": [f"{','.join(map(str, minutes))} * * * *"], "select": {"order": "oldest"}}
    config = make_config(db.url, base_url=fake.base_url, token=fake.token, channels=[channel])
    sync(db, config, now=now - timedelta(hours=3))  # the channel exists since before the downtime
    expected_slot = (local - timedelta(minutes=20)).replace(second=0, microsecond=0)

    async with running_application(config, db) as application:
        await application.start()  # the job queue runs the start-up's missed-slot job
        try:
            await fake.wait_for(f"@{LATEST_USERNAME}", 2, timeout=10)
            await asyncio.sleep(1.5)  # room for a wrong second or third run to show
        finally:
            await application.stop()
        assert await scheduler.run_missed_slots(application) == 0

    sent = fake.replies(f"@{LATEST_USERNAME}")
    assert message_titles(sent) == [[COLUMN_ONE[0].title], [COLUMN_ONE[1].title]]
    assert {p.slot_at for p in posts(db)} == {expected_slot}


async def test_a_missed_interval_slot_runs_once_on_start(archived: Database, fake: FakeBotApi) -> None:
    """`every 1h`, down for hours: starting posts the newest whole hour passed (local grid), once."""
    db = archived
    now = utcnow()
    channel = {"name": "latest", "chat_id": f"@{LATEST_USERNAME}", "per_slot": 1, "timezone": SHANGHAI,
               "schedule": ["every 1h"], "select": {"order": "oldest"}}
    config = make_config(db.url, base_url=fake.base_url, token=fake.token, channels=[channel])
    sync(db, config, now=now - timedelta(hours=3))
    async with running_application(config, db) as application:
        assert await scheduler.run_missed_slots(application) == 1
        assert await scheduler.run_missed_slots(application) == 0
    assert message_titles(fake.replies(f"@{LATEST_USERNAME}")) == [[COLUMN_ONE[0].title]]
    [slot] = {p.slot_at for p in posts(db)}
    assert slot is not None and (slot.minute, slot.second) == (0, 0) and now - timedelta(hours=1) < slot <= now


def test_dry_run_records_dry_run_posts_and_sends_nothing(archived: Database, fake: FakeBotApi, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`digestbot publish --once --dry-run` shows and records the posts, sends none, consumes none."""
    db = archived
    data = config_data(db.url, base_url=fake.base_url, token=fake.token,
                       channels=three_channels(tech_quiet=False)[:2])
    path = write_config(tmp_path / "config.yaml", data)

    assert digestbot(["--config", str(path), "publish", "--once", "--dry-run"]) == 0
    shown = capsys.readouterr().out
    assert "硬核观察 #1" in shown and COLUMN_ONE[0].title in shown
    assert digestbot(["--config", str(path), "deliveries", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["state"] for row in rows} == {DRY_RUN}
    assert sorted(len(row["item_ids"]) for row in rows) == [1, 1, 3]
    assert fake.sent == [] and fake.calls("sendMessage") == [] and fake.calls("sendPhoto") == []

    # A dry run takes nothing from the queue: the real run posts the same first items.
    assert digestbot(["--config", str(path), "publish", "--once"]) == 0
    capsys.readouterr()
    assert message_titles(fake.replies(COLUMN_CHAT)) == [[s.title for s in COLUMN_ONE]]
    assert fake.replies(COLUMN_CHAT)[0].plain_text.startswith("硬核观察 #1")
    assert message_titles(fake.replies(f"@{LATEST_USERNAME}")) == [["开源基金会发布年度报告"],
                                                                   ["编译器支持新语言标准"]]


async def test_seed_archive_publishes_every_item_once(seeds_dir: Path, db: Database, fake: FakeBotApi) -> None:
    """All five seed formats through one channel: Telegram accepts every post as HTML, each item once."""
    report = ingest(db, [seeds_dir])
    assert report.documents_failed == 0
    with db.session() as session:
        items = {i.id: i.title for i in session.scalars(select(Item).where(Item.removed.is_(False)))}
    channel = {"name": "all", "chat_id": COLUMN_CHAT, "per_slot": 50, "select": {"order": "oldest"}}
    fake.limits.group_limit = fake.limits.global_limit = None  # 57 posts at 20 a minute: three minutes
    config = make_config(db.url, base_url=fake.base_url, token=fake.token, channels=[channel],
                         limits=RAISED_LIMITS, publish={"concurrency": 4})
    slot = utcnow().replace(second=0, microsecond=0)
    async with running_application(config, db) as application:
        for step in range((len(items) + 49) // 50):
            await scheduler.run_slot(application, "all", slot + timedelta(minutes=step))
    done = posts(db)
    assert [p.state for p in done] == [SENT] * len(items)
    assert not any(p.plain_fallback for p in done)
    assert sorted(i for p in done for i in p.item_ids) == sorted(items)
    sent = fake.replies(COLUMN_CHAT)
    assert len(sent) == len(items)
    assert fake.count_429 == 0
    # Oldest first: the 2021 column's items lead.
    assert min(done, key=lambda p: p.id).item_ids[0] == min(
        items, key=lambda i: _sort_key(db, i))


def _sort_key(db: Database, item_id: int) -> tuple[datetime, int]:
    with db.session() as session:
        item = session.get(Item, item_id)
        assert item is not None
        return item.sort_at, item.id


async def test_old_articles_ingested_between_slots_are_all_posted(archived: Database, fake: FakeBotApi,
                                                                  tmp_path: Path) -> None:
    """An older column ingested after the channel started: its stories and the ones due anyway all go out."""
    db = archived
    channel = {"name": "all", "chat_id": COLUMN_CHAT, "per_slot": 2, "select": {"order": "oldest"}}
    config = make_config(db.url, base_url=fake.base_url, token=fake.token, channels=[channel])
    slot = utcnow().replace(second=0, microsecond=0)
    late = [Story(f"迟到的旧闻 {k}", f"一条较早的新闻 {k}", "晚到也要发。") for k in (1, 2, 3)]
    async with running_application(config, db) as application:
        await scheduler.run_slot(application, "all", slot)
        (tmp_path / "late").mkdir()
        (tmp_path / "late" / "old-column.md").write_text(
            column_document(15001, 999, "2024-02-01 18:00:00", late), encoding="utf-8")
        assert ingest(db, [tmp_path / "late"]).items_new == 3
        for step in range(1, 10):
            await scheduler.run_slot(application, "all", slot + timedelta(minutes=step))
    titles = [t for m in fake.replies(COLUMN_CHAT) for t in titles_in(m.plain_text, [*ALL_TITLES, *(s.title for s in late)])]
    assert sorted(titles) == sorted([*ALL_TITLES, *(s.title for s in late)])
    # The first slot went out before the old column was known; everything after is in order again.
    assert titles[:2] == [COLUMN_ONE[0].title, COLUMN_ONE[1].title]
    assert titles[2:5] == [s.title for s in late]
