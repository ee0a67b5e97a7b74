"""Bot commands end to end: the real Application polls the fake Bot API over HTTP; the database is SQLite."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from telegram.ext import Application

from bot.app import build_application
from bot.config import BotConfig as Config
from bot.config import config_from_mapping
from bot.handlers.admin import skip_target
from bot.handlers.common import APOLOGY, NOTHING_FOUND, REFUSAL, post_url
from digests.formatting.telegram_html import check_telegram_html
from digests.ingest.pipeline import ingest
from digests.store import open_database
from digests.store.db import Database
from digests.store.models import AuditEntry, Channel, Commentary, Delivery, Item, Post
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi, SentMessage

fake_bot_api = fakebotapi.fake_bot_api  # the shared fixture

ADMIN = 1001
USER = 2002
GROUP = -1003333333333
MAIN_ID, MAIN_USERNAME = -1001111111111, "hardcore_main"
BACKUP_ID = -1002222222222

def linuxcn_doc(number: int, day: str, sections: list[tuple[str, str, str, str, str]]) -> str:
    """A 硬核观察 post as linux.cn stores it: front matter, then a ### section per news item."""
    parts = []
    for title, summary, source, url, commentary in sections:
        part = f"### {title}\n\n{summary}\n\n> **[消息来源：{source}]({url})**"
        if commentary:
            part += f"\n\n> 老王点评：{commentary}"
        parts.append(part)
    body = "\n\n".join(parts)
    return (f"---\nauthor: 硬核老王\ncategories: 硬核观察\ndate: '{day} 08:00:00'\nid: {number}\n"
            f"permalink: /article-{number}-1.html\ntitle: '硬核观察 #{number}'\n---\n\n{body}\n")


DOC_A = linuxcn_doc(91001, "2023-03-01", [
    ("谷歌开源新的编译器", "谷歌今天开源了一个编译器。", "示例新闻", "https://news.example.com/compiler", "开源是好事。"),
    ("C++ <模板> & 开源库更新", "新版本支持 <concepts> & 模块。", "Cpp Weekly", "https://cpp.example.org/templates", ""),
    ("Rust 基金会发布年度报告", "报告显示 Rust 的使用者继续增长。", "Rust Blog", "https://blog.example.org/rust", ""),
])
DOC_B = linuxcn_doc(91002, "2023-03-02", [
    (f"开源数据库 {n} 发布新版本", f"数据库 {n} 的新版本更快。", "DB News", f"https://db.example.com/{n}", "")
    for n in "ABCDE"
])
DOC_C = linuxcn_doc(91003, "2023-03-03", [
    ("量子计算机又破纪录", "研究人员报告了新的纪录。", "Science Daily", "https://science.example.com/q", ""),
])


# ---------------------------------------------------------------------------------------------
# The world: a fake Telegram, a config, an ingested archive, the running bot


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An archive and a database holding it, migrated and ingested once; every test works on a copy."""
    root = tmp_path_factory.mktemp("seeded")
    archive = root / "archive"
    archive.mkdir()
    (archive / "2023-03-01-hardcore.md").write_text(DOC_A, encoding="utf-8")
    (archive / "2023-03-02-hardcore.md").write_text(DOC_B, encoding="utf-8")
    db = open_database(f"sqlite:///{root / 'digest.db'}")
    report = ingest(db, [archive])
    db.dispose()
    assert (report.items_new, report.documents_failed) == (8, 0)
    return archive, root / "digest.db"


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    """A folder of archive.paths that starts empty: what /ingest finds new."""
    path = tmp_path / "incoming"
    path.mkdir()
    return path


@pytest.fixture
def config(fake_bot_api: FakeBotApi, tmp_path: Path, seeded: tuple[Path, Path], incoming: Path) -> Config:
    archive, seed_db = seeded
    shutil.copyfile(seed_db, tmp_path / "digest.db")
    fake_bot_api.add_channel(MAIN_ID, username=MAIN_USERNAME, title="硬核观察")
    fake_bot_api.add_channel(BACKUP_ID, title="Backup")
    fake_bot_api.add_group(GROUP, title="Readers")
    fake_bot_api.add_user(ADMIN, first_name="Editor")
    fake_bot_api.add_user(USER, first_name="Reader")
    return config_from_mapping({
        "database": {"url": f"sqlite:///{tmp_path / 'digest.db'}"},
        "archive": {"paths": [str(archive), str(incoming)]},
        "telegram": {"token": fake_bot_api.token, "base_url": fake_bot_api.base_url, "admins": [ADMIN],
                     "request_timeout": 5},
        "publish": {"drain_interval_seconds": 0.3},
        "channels": [
            {"name": "main", "chat_id": f"@{MAIN_USERNAME}", "schedule": ["0 9 * * *"], "per_slot": 2},
            {"name": "backup", "chat_id": BACKUP_ID, "schedule": ["0 21 * * *"]},
        ],
    })


@pytest.fixture
def store(config: Config) -> Iterator[Database]:
    database = open_database(config.database.url)
    yield database
    database.dispose()


@asynccontextmanager
async def running(config: Config, db: Database) -> AsyncIterator[Application]:
    """The bot as `digestbot run` starts it, polling the fake with a short timeout."""
    application = build_application(config, db)
    async with application:
        assert application.post_init is not None and application.updater is not None
        await application.post_init(application)  # what run_polling does between initialize and start
        await application.updater.start_polling(poll_interval=0.0, timeout=1)
        await application.start()
        try:
            yield application
        finally:
            await application.updater.stop()
            await application.stop()


@pytest.fixture
async def app(config: Config, store: Database) -> AsyncIterator[Application]:
    async with running(config, store) as application:
        yield application


class Chat:
    """A user typing into one chat and reading the bot's answers there."""

    def __init__(self, fake: FakeBotApi, user: int, chat: int | None = None) -> None:
        self.fake, self.user, self.chat = fake, user, chat if chat is not None else user

    async def send(self, text: str, replies: int = 1) -> list[SentMessage]:
        before = len(self.fake.replies(self.chat))
        self.fake.push_message(self.chat, self.user, text)
        return (await self.fake.wait_for(self.chat, before + replies))[before:]

    async def ask(self, text: str) -> str:
        """The plain text of the bot's one answer."""
        [answer] = await self.send(text)
        return answer.plain_text

    async def press(self, message: SentMessage, data: str) -> Any:
        """Press an inline button; returns the callback answer."""
        before = len(self.fake.answered_callbacks)
        self.fake.push_callback_query(self.user, data, message)
        await self.fake.wait_until(lambda: len(self.fake.answered_callbacks) > before)
        return self.fake.answered_callbacks[before]


@pytest.fixture
def admin(fake_bot_api: FakeBotApi) -> Chat:
    return Chat(fake_bot_api, ADMIN)


@pytest.fixture
def reader(fake_bot_api: FakeBotApi) -> Chat:
    return Chat(fake_bot_api, USER)


def links(message: SentMessage) -> list[str]:
    return [e["url"] for e in message.entities if e["type"] == "text_link"]


def buttons(message: SentMessage) -> dict[str, str]:
    """Button label -> callback data."""
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


def item_id(db: Database, title: str) -> int:
    with db.session() as session:
        return session.scalars(select(Item.id).where(Item.title == title)).one()


def channel_row(db: Database, name: str) -> Channel:
    with db.session() as session:
        return session.scalars(select(Channel).where(Channel.name == name)).one()


def audit_actions(db: Database) -> list[tuple[str, str, str]]:
    with db.session() as session:
        return [(a.actor, a.action, a.target) for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# ---------------------------------------------------------------------------------------------
# Start-up


async def test_command_lists_are_published_per_scope(app: Application, fake_bot_api: FakeBotApi) -> None:
    everyone = {c["command"] for c in fake_bot_api.my_commands()}
    admins = {c["command"] for c in fake_bot_api.my_commands({"type": "chat", "chat_id": ADMIN})}
    assert {"start", "help", "search", "latest", "item"} == everyone
    assert everyone < admins
    assert {"schedule", "pause", "resume", "queue", "skip", "postnow", "comment", "uncertain", "stats",
            "ingest", "channels"} <= admins


async def test_start_and_help_show_admin_commands_to_admins_only(app: Application, admin: Chat,
                                                                 reader: Chat) -> None:
    welcome = await reader.ask("/start")
    assert "/search" in welcome and "/schedule" not in welcome
    assert "/schedule" not in await reader.ask("/help")
    assert "/schedule CHANNEL [set CRON]" in await admin.ask("/help")


# ---------------------------------------------------------------------------------------------
# Subscribers


async def test_search_pages_through_results_with_buttons(app: Application, reader: Chat) -> None:
    [first] = await reader.send("/search 开源")
    assert first.plain_text.startswith("🔎 开源")
    assert first.plain_text.count("ID ") == 5
    assert set(buttons(first)) == {"下一页 / next ›"}
    assert all(len(data.encode()) <= 64 for data in buttons(first).values())
    shown_first = first.plain_text

    await reader.press(first, buttons(first)["下一页 / next ›"])
    page_two = first.plain_text  # the reply was edited in place
    assert "page 2 · 共 7 条 / 7 results" in page_two and page_two.count("ID ") == 2
    assert set(buttons(first)) == {"‹ 上一页 / previous"}
    titles = {line for line in (shown_first + page_two).splitlines() if "开源" in line and "." in line[:3]}
    assert len(titles) == 7  # every match once, none twice

    await reader.press(first, buttons(first)["‹ 上一页 / previous"])
    assert first.plain_text == shown_first


async def test_search_button_works_without_any_state(config: Config, store: Database, reader: Chat) -> None:
    async with running(config, store):
        [reply] = await reader.send("/search 开源")
    async with running(config, store):  # a restart in between: the button still knows its query
        await reader.press(reply, buttons(reply)["下一页 / next ›"])
        assert "page 2" in reply.plain_text


async def test_search_escapes_item_text_and_links_the_original(app: Application, reader: Chat) -> None:
    [reply] = await reader.send("/search 模板")
    assert "C++ <模板> & 开源库更新" in reply.plain_text
    assert "https://cpp.example.org/templates" in links(reply)
    assert "Cpp Weekly" in reply.plain_text and "2023-03-01" in reply.plain_text


async def test_search_in_a_group(app: Application, fake_bot_api: FakeBotApi) -> None:
    group = Chat(fake_bot_api, USER, GROUP)
    assert "Rust 基金会发布年度报告" in await group.ask(f"/search@{fake_bot_api.bot_username} Rust")


async def test_search_without_results_or_words(app: Application, reader: Chat) -> None:
    assert (await reader.ask("/search xyzzy")).startswith(NOTHING_FOUND)
    assert (await reader.ask("/search")).startswith("Usage: /search WORDS")


async def test_search_links_the_channel_posts_of_an_item(app: Application, store: Database, admin: Chat,
                                                         reader: Chat) -> None:
    rust = item_id(store, "Rust 基金会发布年度报告")
    await admin.send(f"/postnow main {rust}")
    await admin.send(f"/postnow backup {rust}")
    [reply] = await reader.send("/search Rust")
    assert f"https://t.me/{MAIN_USERNAME}/1" in links(reply)
    assert "https://t.me/c/2222222222/1" in links(reply)


def test_post_url_for_usernames_and_channel_ids() -> None:
    assert post_url("@hardcore_main", 7) == "https://t.me/hardcore_main/7"
    assert post_url("-1002222222222", 7) == "https://t.me/c/2222222222/7"
    assert post_url("12345", 7) is None  # a private chat has no public link


async def test_latest_lists_the_newest_five(app: Application, reader: Chat) -> None:
    [reply] = await reader.send("/latest")
    assert reply.plain_text.count("ID ") == 5
    assert "2023-03-02" in reply.plain_text and "2023-03-01" not in reply.plain_text
    assert "https://db.example.com/A" in links(reply)
    assert (await reader.ask("/latest please")) == "Usage: /latest"


async def test_item_shows_the_blurb(app: Application, store: Database, reader: Chat) -> None:
    compiler = item_id(store, "谷歌开源新的编译器")
    text = await reader.ask(f"/item {compiler}")
    assert "谷歌开源新的编译器" in text and "开源是好事。" in text and f"ID {compiler}" in text
    assert (await reader.ask("/item")).startswith("Usage: /item ID")
    assert (await reader.ask("/item abc")).startswith("Usage: /item ID")
    assert (await reader.ask("/item 999")) == f"{NOTHING_FOUND}: ID 999"


async def test_inline_query_offers_blurbs(app: Application, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.push_inline_query(USER, "开源")
    await fake_bot_api.wait_until(lambda: len(fake_bot_api.inline_answers) == 1)
    answer = fake_bot_api.inline_answers[0]
    assert len(answer.results) == 7 and not answer.next_offset
    by_title = {r["title"]: r for r in answer.results}
    content = by_title["C++ <模板> & 开源库更新"]["input_message_content"]
    assert content["parse_mode"] == "HTML"
    assert "&lt;模板&gt; &amp;" in content["message_text"] and check_telegram_html(content["message_text"]) is None

    fake_bot_api.push_inline_query(USER, "xyzzy")
    await fake_bot_api.wait_until(lambda: len(fake_bot_api.inline_answers) == 2)
    nothing = fake_bot_api.inline_answers[1]
    assert nothing.results == [] and nothing.button is not None and nothing.button["text"] == NOTHING_FOUND


# ---------------------------------------------------------------------------------------------
# Admins


async def test_admin_commands_are_refused_to_others_and_logged(app: Application, store: Database, reader: Chat,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.handlers"):
        assert await reader.ask("/pause main") == REFUSAL
        assert await reader.ask("/stats") == REFUSAL
    assert not channel_row(store, "main").paused
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("pause" in m and str(USER) in m for m in refusals)


async def test_channels_lists_every_channel(app: Application, admin: Chat) -> None:
    text = await admin.ask("/channels")
    assert "main → @hardcore_main · active" in text and "0 9 * * *" in text
    assert f"backup → {BACKUP_ID}" in text and "0 21 * * *" in text
    assert (await admin.ask("/channels now")) == "Usage: /channels"


def slot_triggers(application: Application, name: str) -> list[Any]:
    assert application.job_queue is not None
    jobs = [j for j in application.job_queue.jobs() if (j.name or "").startswith(f"slot:{name}:")]
    return [j.job.trigger for j in sorted(jobs, key=lambda j: j.name or "")]


def cron_fields(trigger: CronTrigger) -> dict[str, str]:
    return {f.name: str(f) for f in trigger.fields}


async def test_schedule_shows_validates_and_applies_at_once(app: Application, store: Database,
                                                             admin: Chat) -> None:
    shown = await admin.ask("/schedule main")
    assert "0 9 * * *" in shown and "Asia/Shanghai" in shown and "next 20" in shown

    saved = await admin.ask("/schedule main set 30 7 * * *; every 2h")
    assert saved.startswith("Schedule saved") and "30 7 * * *" in saved and "every 2h" in saved
    cron, interval = slot_triggers(app, "main")
    assert isinstance(cron, CronTrigger) and (cron_fields(cron)["hour"], cron_fields(cron)["minute"]) == ("7", "30")
    assert isinstance(interval, IntervalTrigger) and interval.interval == timedelta(hours=2)
    assert ("tg:1001", "schedule", "channel:main") in audit_actions(store)

    bad = await admin.ask("/schedule main set 0 25 * * *")
    assert "Schedule not changed" in bad and "example" in bad and "Usage: /schedule CHANNEL [set CRON]" in bad
    assert (await admin.ask("/schedule main set every 5s")).startswith("Schedule not changed")
    assert channel_row(store, "main").settings["schedule"] == ["30 7 * * *", "every 2h"]
    assert len(slot_triggers(app, "main")) == 2

    assert (await admin.ask("/schedule")).startswith("Usage: /schedule CHANNEL [set CRON]")
    assert (await admin.ask("/schedule main set")).startswith("Usage: /schedule")
    assert (await admin.ask("/schedule main sat 0 9 * * *")).startswith("Usage: /schedule")
    assert "no channel 'nope'" in await admin.ask("/schedule nope")


async def test_schedule_change_is_in_effect_after_a_restart(config: Config, store: Database,
                                                            admin: Chat) -> None:
    async with running(config, store) as first:
        assert (await admin.ask("/schedule main set 15 6 * * 1-5")).startswith("Schedule saved")
        assert cron_fields(slot_triggers(first, "main")[0])["day_of_week"] == "1-5"
    async with running(config, store) as second:  # a new Application on the same database
        [trigger] = slot_triggers(second, "main")
        fields = cron_fields(trigger)
        assert (fields["hour"], fields["minute"], fields["day_of_week"]) == ("6", "15", "1-5")
        assert "15 6 * * 1-5" in await admin.ask("/schedule main")


async def test_pause_and_resume(app: Application, store: Database, admin: Chat) -> None:
    assert "main is paused" in await admin.ask("/pause main maintenance window")
    row = channel_row(store, "main")
    assert row.paused and row.paused_reason == "maintenance window"
    assert "paused (maintenance window)" in await admin.ask("/channels")
    assert "is paused" in await admin.ask("/postnow main")
    assert "posting again" in await admin.ask("/resume main")
    assert not channel_row(store, "main").paused
    actions = [a[1] for a in audit_actions(store)]
    assert actions[-2:] == ["pause", "resume"]
    assert (await admin.ask("/pause")).startswith("Usage: /pause CHANNEL")
    assert (await admin.ask("/resume main now")).startswith("Usage: /resume CHANNEL")
    assert "no channel 'nope'" in await admin.ask("/resume nope")


async def test_queue_previews_the_next_posts(app: Application, store: Database, admin: Chat) -> None:
    summary, *previews = await admin.send("/queue main", replies=3)  # per_slot 2: two previews
    assert summary.plain_text.startswith("Queue of main") and summary.plain_text.count("• ID ") == 5
    assert "谷歌开源新的编译器" in previews[0].plain_text
    assert "https://news.example.com/compiler" in links(previews[0])
    with store.session() as session:  # a preview plans nothing
        assert session.scalar(select(Post.id)) is None
    assert (await admin.ask("/queue")).startswith("Usage: /queue CHANNEL")


async def test_skip_keeps_an_item_out_of_a_channel(app: Application, store: Database, admin: Chat) -> None:
    compiler = item_id(store, "谷歌开源新的编译器")
    assert "will not be posted to main" in await admin.ask(f"/skip main {compiler}")
    with store.session() as session:
        assert session.scalars(select(Delivery.skipped).where(Delivery.item_id == compiler)).one()
    summary, *_ = await admin.send("/queue main", replies=3)
    assert "谷歌开源新的编译器" not in summary.plain_text
    assert "already scheduled or sent" in await admin.ask(f"/skip main {compiler}")
    assert "Which channel?" in await admin.ask(f"/skip {compiler}")  # two channels: the name is needed
    assert (await admin.ask("/skip")).startswith("Usage: /skip [CHANNEL] ITEM")
    assert "no item 999" in await admin.ask("/skip main 999")
    assert ("tg:1001", "skip", "channel:main") in audit_actions(store)


def test_skip_needs_no_channel_when_there_is_one() -> None:
    assert skip_target(["7"], ["main"]) == ("main", 7)
    assert skip_target(["main", "7"], ["main", "backup"]) == ("main", 7)
    assert isinstance(skip_target(["7"], ["main", "backup"]), str)
    assert skip_target(["main", "x"], ["main"]) == ""


async def test_postnow_posts_at_once(app: Application, store: Database, admin: Chat,
                                     fake_bot_api: FakeBotApi) -> None:
    rust = item_id(store, "Rust 基金会发布年度报告")
    reply = await admin.ask(f"/postnow main {rust}")
    assert f"post 1 (items {rust}): sent" in reply
    [post] = fake_bot_api.replies(MAIN_ID)
    assert "Rust 基金会发布年度报告" in post.plain_text
    [shown] = await admin.send(f"/item {rust}")
    assert f"https://t.me/{MAIN_USERNAME}/1" in links(shown)  # where the channel posted it
    assert "Posted to main" in await admin.ask("/postnow main")  # the next due ones
    await fake_bot_api.wait_for(MAIN_ID, 3)  # per_slot 2
    assert "already posted" in await admin.ask(f"/postnow main {rust}")
    assert (await admin.ask("/postnow")).startswith("Usage: /postnow CHANNEL [ITEM...]")
    assert (await admin.ask("/postnow main x")).startswith("Usage: /postnow")
    assert "no item 999" in await admin.ask("/postnow main 999")
    assert "no channel 'nope'" in await admin.ask("/postnow nope")
    assert [a for a in audit_actions(store) if a[1] == "postnow"][0] == ("tg:1001", "postnow", "channel:main")


async def test_comment_is_stored_and_shown(app: Application, store: Database, admin: Chat, reader: Chat) -> None:
    rust = item_id(store, "Rust 基金会发布年度报告")
    assert "Commentary saved" in await admin.ask(f"/comment {rust} 社区的 <活力> 依旧")
    with store.session() as session:
        entry = session.scalars(select(Commentary).where(Commentary.item_id == rust)).one()
        assert (entry.author, entry.text) == ("tg:1001", "社区的 <活力> 依旧")
    assert "社区的 <活力> 依旧" in await reader.ask(f"/item {rust}")
    assert (await admin.ask("/comment")).startswith("Usage: /comment ITEM TEXT")
    assert (await admin.ask(f"/comment {rust}")).startswith("Usage: /comment")
    assert "no item 999" in await admin.ask("/comment 999 好")


async def test_uncertain_posts_are_resolved_with_buttons(app: Application, store: Database, admin: Chat,
                                                         reader: Chat, fake_bot_api: FakeBotApi) -> None:
    assert await admin.ask("/uncertain") == "No uncertain or failed posts."
    rust = item_id(store, "Rust 基金会发布年度报告")
    # Telegram takes the post but the answer never arrives: the outcome is unknown.
    fake_bot_api.inject("sendMessage", "drop_after_accept", chat_id=MAIN_ID)
    notice, reply = await admin.send(f"/postnow main {rust}", replies=2)
    assert "may or may not have been sent" in notice.plain_text
    assert reply.plain_text.endswith("uncertain")

    [listed] = await admin.send("/uncertain")
    assert "Post 1 · main · uncertain" in listed.plain_text and "Rust" in listed.plain_text
    assert set(buttons(listed)) == {"✅ confirm sent", "🔁 resend", "🗑 drop"}

    refused = await reader.press(listed, "u:drop:1")
    assert refused.text == REFUSAL and refused.show_alert
    answer = await admin.press(listed, buttons(listed)["🔁 resend"])
    assert "queued to be sent again" in answer.text
    assert "queued to be sent again by tg:1001" in listed.plain_text and not buttons(listed)
    await fake_bot_api.wait_for(MAIN_ID, 2)  # the drain job sends it again
    assert ("tg:1001", "post-resend", "post:1") in audit_actions(store)
    assert "already resolved" in (await admin.press(listed, "u:drop:1")).text
    assert (await admin.ask("/uncertain all")) == "Usage: /uncertain"


@pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:telegram.warnings.PTBDeprecationWarning")
async def test_stats_counts_posts_and_429s(app: Application, store: Database, admin: Chat,
                                           fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.inject("sendMessage", "429", retry_after=1, chat_id=MAIN_ID)
    rust = item_id(store, "Rust 基金会发布年度报告")
    assert (await admin.ask(f"/postnow main {rust}")).endswith("sent")  # waited the second, then sent
    [reply] = await admin.send("/stats")
    text = reply.plain_text
    assert "items: 8" in text and "posts sent: 1 · pending: 0 · failed: 0 · uncertain: 0" in text
    assert "429s received: 1" in text and "backup: never" in text
    assert f"https://t.me/{MAIN_USERNAME}/1" in links(reply)
    assert (await admin.ask("/stats please")) == "Usage: /stats"


async def test_ingest_reads_the_archive_again(app: Application, store: Database, admin: Chat,
                                              incoming: Path, reader: Chat) -> None:
    (incoming / "2023-03-03-hardcore.md").write_text(DOC_C, encoding="utf-8")
    started, done = await admin.send("/ingest", replies=2)
    assert started.plain_text.startswith("Ingesting")
    assert "documents: 1 new, 0 updated, 2 unchanged, 0 failed" in done.plain_text
    assert "items: 1 new" in done.plain_text
    assert "量子计算机又破纪录" in await reader.ask("/latest")
    assert ("tg:1001", "ingest", "archive") in audit_actions(store)
    assert (await admin.ask("/ingest now")) == "Usage: /ingest"


# ---------------------------------------------------------------------------------------------
# Errors


async def test_errors_apologise_and_tell_the_admins_once(app: Application, admin: Chat, reader: Chat,
                                                         fake_bot_api: FakeBotApi) -> None:
    def admin_notices() -> list[str]:
        return [m.plain_text for m in fake_bot_api.replies(ADMIN) if m.plain_text.startswith("Error while")]

    for _ in range(2):
        fake_bot_api.inject("sendMessage", "400", chat_id=USER, description="Bad Request: injected for the test")
        assert await reader.ask("/latest") == APOLOGY  # the reply failed; the apology went out
    [notice] = admin_notices()
    assert "'/latest'" in notice and "BadRequest: Injected for the test" in notice
    assert "Traceback" not in notice


# ---------------------------------------------------------------------------------------------
# Numbers that are no ids: '²' passes str.isdigit but not int(); a huge one overflows the database

HUGE = "99999999999999999999999"


async def test_ids_that_are_not_numbers_or_too_large_get_the_usage(app: Application, admin: Chat,
                                                                    reader: Chat) -> None:
    for text in ("/item ²", "/item ٣", "/item -1"):
        assert (await reader.ask(text)).startswith("Usage: /item ID"), text
    assert await reader.ask(f"/item {HUGE}") == f"ID {HUGE} is too large: at most 2147483647\nUsage: /item ID\n" \
                                                "用法：/item 编号（搜索结果里的 ID）"
    assert await reader.ask("/item 2147483647") == f"{NOTHING_FOUND}: ID 2147483647"  # the largest id is one
    assert (await admin.ask("/comment ² text")).startswith("Usage: /comment ITEM TEXT")
    assert (await admin.ask(f"/comment {HUGE} text")).startswith(f"ITEM {HUGE} is too large")
    assert (await admin.ask("/postnow main ²")).startswith("Usage: /postnow CHANNEL [ITEM...]")
    assert (await admin.ask(f"/postnow main 1 {HUGE}")).startswith(f"ITEM {HUGE} is too large")
    assert (await admin.ask("/skip main ²")).startswith("Usage: /skip [CHANNEL] ITEM")
    assert "too large" in await admin.ask(f"/skip main {HUGE}")
    assert not app.bot_data.get("errors_told")  # no error reached the error handler


async def test_forged_offsets_and_buttons_are_answered(app: Application, fake_bot_api: FakeBotApi,
                                                       reader: Chat, admin: Chat) -> None:
    for offset in ("²", HUGE):  # inline offsets come back from the client: a forged one starts over
        before = len(fake_bot_api.inline_answers)
        fake_bot_api.push_inline_query(USER, "开源", offset=offset)
        await fake_bot_api.wait_until(lambda before=before: len(fake_bot_api.inline_answers) > before)
        assert len(fake_bot_api.inline_answers[before].results) == 7
    [first] = await reader.send("/search 开源")
    key = buttons(first)["下一页 / next ›"].rsplit(":", 1)[1]
    for offset in ("²", HUGE):
        answer = await reader.press(first, f"s:{offset}:{key}")
        assert answer.text.startswith("请重新搜索") and answer.show_alert
    assert (await admin.press(first, "u:drop:²")).text == "Unknown button."
    assert (await admin.press(first, f"u:drop:{HUGE}")).text == "Unknown button."
    assert not [m for m in fake_bot_api.replies(ADMIN) if m.plain_text.startswith("Error while")]


# ---------------------------------------------------------------------------------------------
# Replies under Telegram's limits: the bot's rate limiter


@pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:telegram.warnings.PTBDeprecationWarning")
async def test_forty_users_searching_at_once_each_get_one_answer(config: Config, store: Database,
                                                                 fake_bot_api: FakeBotApi) -> None:
    """More replies at once than Telegram takes in a second (30): they wait their turn; a 429 is waited out."""
    users = [5000 + n for n in range(40)]
    for user in users:
        fake_bot_api.add_user(user)
    fake_bot_api.inject("sendMessage", "429", retry_after=1, chat_id=users[3])  # flood waits on top
    fake_bot_api.inject("sendMessage", "429", retry_after=2, chat_id=users[17])
    async with running(config, store):
        for user in users:
            fake_bot_api.push_message(user, user, "/search 开源")
        await fake_bot_api.wait_until(lambda: all(fake_bot_api.replies(u) for u in users), timeout=30,
                                      describe=lambda: f"{sum(1 for u in users if fake_bot_api.replies(u))} answered")
        await asyncio.sleep(0.5)  # nothing more follows
    for user in users:
        [answer] = fake_bot_api.replies(user)
        assert answer.plain_text.startswith("🔎 开源")
    throttles = fake_bot_api.throttled
    assert sorted((t.chat_id, t.reason) for t in throttles) == [(users[3], "injected"), (users[17], "injected")]
    assert fake_bot_api.early_retries == 0
    for throttle in throttles:  # sent again once its retry_after had passed, not before
        [again] = [r for r in fake_bot_api.calls("sendMessage") if r.params.get("chat_id") == throttle.chat_id
                   and r.status == 200]
        assert again.received_at >= throttle.at + throttle.retry_after
    arrivals = sorted(m.received_at for m in fake_bot_api.sent)
    assert max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals) <= 30


@pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:telegram.warnings.PTBDeprecationWarning")
async def test_answers_to_inline_queries_and_buttons_wait_out_a_429(app: Application, fake_bot_api: FakeBotApi,
                                                                    reader: Chat) -> None:
    fake_bot_api.inject("answerInlineQuery", "429", retry_after=1)
    fake_bot_api.push_inline_query(USER, "开源")
    await fake_bot_api.wait_until(lambda: len(fake_bot_api.inline_answers) == 1, timeout=10)
    [first] = await reader.send("/search 开源")
    fake_bot_api.inject("answerCallbackQuery", "429", retry_after=1)
    fake_bot_api.inject("editMessageText", "429", retry_after=1)
    await reader.press(first, buttons(first)["下一页 / next ›"])
    assert "page 2" in first.plain_text
    assert len(fake_bot_api.answered_callbacks) == 1 and len(fake_bot_api.inline_answers) == 1
    assert len(fake_bot_api.throttled) == 3 and fake_bot_api.early_retries == 0


async def test_replies_and_channel_posts_share_telegrams_global_limit(config: Config, store: Database,
                                                                      fake_bot_api: FakeBotApi) -> None:
    """16 channel posts and 30 replies at once: together over 30 a second unless they share one window."""
    from digests.publishing.planning import plan_slot

    users = [6000 + n for n in range(30)]
    for user in users:
        fake_bot_api.add_user(user)
    with store.session() as session:
        every_item = list(session.scalars(select(Item.id)))
    async with running(config, store) as application:
        publisher = application.bot_data["publisher"]
        for channel in ("main", "backup"):
            await asyncio.to_thread(plan_slot, store, channel, publisher.render, item_ids=every_item)
        for user in users:
            fake_bot_api.push_message(user, user, "/search 开源")
        await publisher.drain()
        await fake_bot_api.wait_until(lambda: all(fake_bot_api.replies(u) for u in users), timeout=30)
    assert len(fake_bot_api.replies(MAIN_ID)) == len(fake_bot_api.replies(BACKUP_ID)) == len(every_item)
    assert all(len(fake_bot_api.replies(u)) == 1 for u in users)
    assert fake_bot_api.count_429 == 0
    arrivals = sorted(m.received_at for m in fake_bot_api.sent)
    assert max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals) <= 30
