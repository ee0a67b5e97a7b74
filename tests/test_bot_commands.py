"""Bot commands end to end: the real Application polls the fake Bot API over HTTP; the database is SQLite.

Every test with users runs twice: once with their Telegram in English (language_code "en"), once
in Chinese ("zh-hans"); `say(en, zh)` is what the bot should answer in the user's language.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from telegram.ext import Application

from bot.app import build_application
from bot.config import BotConfig as Config
from bot.config import config_from_mapping
from bot.handlers.admin import skip_target
from bot.handlers.common import post_url
from bot.scheduler import GridTrigger
from digests.formatting.telegram_html import check_telegram_html
from digests.ingest.pipeline import ingest
from digests.store import open_database
from digests.store.db import Database
from digests.store.models import AuditEntry, Channel, Commentary, Delivery, Item, Post, UserPref
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi, SentMessage

fake_bot_api = fakebotapi.fake_bot_api  # the shared fixture

ADMIN = 1001
USER = 2002
GROUP = -1003333333333
MAIN_ID, MAIN_USERNAME = -1001111111111, "hardcore_main"
BACKUP_ID = -1002222222222
Say = Callable[[str, str], str]

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


@pytest.fixture(params=["en", "zh-hans"])
def language_code(request: pytest.FixtureRequest) -> str:
    """The Telegram language of the admin and the reader."""
    code: str = request.param
    return code


@pytest.fixture
def say(language_code: str) -> Say:
    """What the bot says in the users' language: say(English, Chinese)."""
    return lambda en, zh: en if language_code == "en" else zh


@pytest.fixture
def config(fake_bot_api: FakeBotApi, tmp_path: Path, seeded: tuple[Path, Path], incoming: Path,
           language_code: str) -> Config:
    archive, seed_db = seeded
    shutil.copyfile(seed_db, tmp_path / "digest.db")
    fake_bot_api.add_channel(MAIN_ID, username=MAIN_USERNAME, title="硬核观察")
    fake_bot_api.add_channel(BACKUP_ID, title="Backup")
    fake_bot_api.add_group(GROUP, title="Readers")
    fake_bot_api.add_user(ADMIN, first_name="Editor", language_code=language_code)
    fake_bot_api.add_user(USER, first_name="Reader", language_code=language_code)
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


async def test_command_lists_are_published_per_scope_and_language(app: Application,
                                                                  fake_bot_api: FakeBotApi) -> None:
    admin_scope = {"type": "chat", "chat_id": ADMIN}
    for language in ("", "en"):  # "": no language_code, what every language but English sees (zh_CN)
        everyone = {c["command"] for c in fake_bot_api.my_commands(language_code=language)}
        admins = {c["command"] for c in fake_bot_api.my_commands(admin_scope, language_code=language)}
        assert {"start", "help", "search", "latest", "item", "lang"} == everyone
        assert everyone < admins
        assert {"schedule", "pause", "resume", "queue", "skip", "postnow", "comment", "uncertain", "stats",
                "ingest", "channels"} <= admins

    def descriptions(scope: dict[str, Any] | None, language: str) -> dict[str, str]:
        return {c["command"]: c["description"] for c in fake_bot_api.my_commands(scope, language)}

    chinese, english = descriptions(None, ""), descriptions(None, "en")
    assert (chinese["search"], english["search"]) == ("搜索归档：/search 关键词", "search the archive: /search WORDS")
    assert (chinese["lang"], english["lang"]) == ("回复的语言：/lang en|zh", "the language of the replies: /lang en|zh")
    admin_chinese, admin_english = descriptions(admin_scope, ""), descriptions(admin_scope, "en")
    assert (admin_chinese["pause"], admin_english["pause"]) == ("暂停频道：/pause 频道", "pause a channel: /pause CHANNEL")
    assert admin_chinese["search"] == chinese["search"] and admin_english["search"] == english["search"]
    han = re.compile(r"[\u4e00-\u9fff]")  # each list wholly in its language
    assert all(han.search(text) for text in admin_chinese.values())
    assert not any(han.search(text) for text in admin_english.values())


async def test_start_and_help_show_admin_commands_to_admins_only(app: Application, admin: Chat,
                                                                 reader: Chat, say: Say) -> None:
    welcome = await reader.ask("/start")
    assert welcome.startswith(say("Hello! This bot searches the archive", "你好！这里可以搜索「硬核观察」的新闻归档。"))
    assert "/search" in welcome and "/schedule" not in welcome
    assert say("/lang — the language of the replies", "/lang — 回复的语言") in welcome
    assert "/schedule" not in await reader.ask("/help")
    assert say("/schedule CHANNEL [set CRON]", "/schedule 频道 [set CRON]") in await admin.ask("/help")


# ---------------------------------------------------------------------------------------------
# Subscribers


async def test_search_pages_through_results_with_buttons(app: Application, reader: Chat, say: Say) -> None:
    [first] = await reader.send("/search 开源")
    assert first.plain_text.startswith("🔎 开源")
    assert first.plain_text.count("ID ") == 5
    assert set(buttons(first)) == {say("next ›", "下一页 ›")}
    assert all(len(data.encode()) <= 64 for data in buttons(first).values())
    shown_first = first.plain_text

    await reader.press(first, buttons(first)[say("next ›", "下一页 ›")])
    page_two = first.plain_text  # the reply was edited in place
    assert say("page 2 · 7 results", "第 2 页 · 共 7 条") in page_two and page_two.count("ID ") == 2
    assert set(buttons(first)) == {say("‹ previous", "‹ 上一页")}
    titles = {line for line in (shown_first + page_two).splitlines() if "开源" in line and "." in line[:3]}
    assert len(titles) == 7  # every match once, none twice

    await reader.press(first, buttons(first)[say("‹ previous", "‹ 上一页")])
    assert first.plain_text == shown_first


async def test_search_button_works_without_any_state(config: Config, store: Database, reader: Chat,
                                                     say: Say) -> None:
    async with running(config, store):
        [reply] = await reader.send("/search 开源")
    async with running(config, store):  # a restart in between: the button still knows its query
        await reader.press(reply, buttons(reply)[say("next ›", "下一页 ›")])
        assert say("page 2", "第 2 页") in reply.plain_text


async def test_search_escapes_item_text_and_links_the_original(app: Application, reader: Chat) -> None:
    [reply] = await reader.send("/search 模板")
    assert "C++ <模板> & 开源库更新" in reply.plain_text
    assert "https://cpp.example.org/templates" in links(reply)
    assert "Cpp Weekly" in reply.plain_text and "2023-03-01" in reply.plain_text


async def test_search_in_a_group(app: Application, fake_bot_api: FakeBotApi) -> None:
    group = Chat(fake_bot_api, USER, GROUP)
    assert "Rust 基金会发布年度报告" in await group.ask(f"/search@{fake_bot_api.bot_username} Rust")


async def test_search_without_results_or_words(app: Application, reader: Chat, say: Say) -> None:
    assert (await reader.ask("/search xyzzy")).startswith(say("Nothing found", "没有找到"))
    assert (await reader.ask("/search")).startswith(say("Usage: /search WORDS", "用法：/search 关键词"))


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


async def test_latest_lists_the_newest_five(app: Application, reader: Chat, say: Say) -> None:
    [reply] = await reader.send("/latest")
    assert reply.plain_text.count("ID ") == 5
    assert "2023-03-02" in reply.plain_text and "2023-03-01" not in reply.plain_text
    assert "https://db.example.com/A" in links(reply)
    assert (await reader.ask("/latest please")) == say("Usage: /latest", "用法：/latest")


async def test_item_shows_the_blurb(app: Application, store: Database, reader: Chat, say: Say) -> None:
    compiler = item_id(store, "谷歌开源新的编译器")
    text = await reader.ask(f"/item {compiler}")
    assert "谷歌开源新的编译器" in text and "开源是好事。" in text and f"ID {compiler}" in text
    assert (await reader.ask("/item")).startswith(say("Usage: /item ID", "用法：/item 编号"))
    assert (await reader.ask("/item abc")).startswith(say("Usage: /item ID", "用法：/item 编号"))
    assert (await reader.ask("/item 999")) == say("Nothing found: ID 999", "没有找到：ID 999")


async def test_inline_query_offers_blurbs(app: Application, fake_bot_api: FakeBotApi, say: Say) -> None:
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
    assert nothing.results == [] and nothing.button is not None
    assert nothing.button["text"] == say("Nothing found", "没有找到")


# ---------------------------------------------------------------------------------------------
# Admins


REFUSAL = ("Sorry, this command is for the channel's admins.", "抱歉，这个命令只对管理员开放。")


async def test_admin_commands_are_refused_to_others_and_logged(app: Application, store: Database, reader: Chat,
                                                                caplog: pytest.LogCaptureFixture, say: Say) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.handlers"):
        assert await reader.ask("/pause main") == say(*REFUSAL)
        assert await reader.ask("/stats") == say(*REFUSAL)
    assert not channel_row(store, "main").paused
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("pause" in m and str(USER) in m for m in refusals)


async def test_channels_lists_every_channel(app: Application, admin: Chat, say: Say) -> None:
    text = await admin.ask("/channels")
    assert say("main → @hardcore_main · active", "main → @hardcore_main · 运行中") in text and "0 9 * * *" in text
    assert f"backup → {BACKUP_ID}" in text and "0 21 * * *" in text
    assert (await admin.ask("/channels now")) == say("Usage: /channels", "用法：/channels")


def slot_triggers(application: Application, name: str) -> list[Any]:
    assert application.job_queue is not None
    jobs = [j for j in application.job_queue.jobs() if (j.name or "").startswith(f"slot:{name}:")]
    return [j.job.trigger for j in sorted(jobs, key=lambda j: j.name or "")]


def cron_fields(trigger: CronTrigger) -> dict[str, str]:
    return {f.name: str(f) for f in trigger.fields}


async def test_schedule_shows_validates_and_applies_at_once(app: Application, store: Database,
                                                             admin: Chat, say: Say) -> None:
    shown = await admin.ask("/schedule main")
    assert "0 9 * * *" in shown and "Asia/Shanghai" in shown and say("next 20", "下次 20") in shown

    saved = await admin.ask("/schedule main set 30 7 * * *; every 2h")
    assert saved.startswith(say("Schedule saved", "发布时间已保存")) and "30 7 * * *" in saved and "every 2h" in saved
    cron, interval = slot_triggers(app, "main")
    assert isinstance(cron, CronTrigger) and (cron_fields(cron)["hour"], cron_fields(cron)["minute"]) == ("7", "30")
    assert isinstance(interval, GridTrigger) and interval.interval == timedelta(hours=2)  # on its grid
    assert ("tg:1001", "schedule", "channel:main") in audit_actions(store)

    bad = await admin.ask("/schedule main set 0 25 * * *")
    assert say("Schedule not changed", "发布时间未修改") in bad and "example" in bad  # the cron error is English
    assert say("Usage: /schedule CHANNEL [set CRON]", "用法：/schedule 频道 [set CRON]") in bad
    assert (await admin.ask("/schedule main set every 5s")).startswith(say("Schedule not changed", "发布时间未修改"))
    assert channel_row(store, "main").settings["schedule"] == ["30 7 * * *", "every 2h"]
    assert len(slot_triggers(app, "main")) == 2

    usage = say("Usage: /schedule", "用法：/schedule")
    assert (await admin.ask("/schedule")).startswith(say("Usage: /schedule CHANNEL [set CRON]",
                                                         "用法：/schedule 频道 [set CRON]"))
    assert (await admin.ask("/schedule main set")).startswith(usage)
    assert (await admin.ask("/schedule main sat 0 9 * * *")).startswith(usage)
    assert say("no channel 'nope' (channels: backup, main)", "没有频道“nope”（现有频道：backup, main）") in await admin.ask("/schedule nope")


async def test_schedule_change_is_in_effect_after_a_restart(config: Config, store: Database,
                                                            admin: Chat, say: Say) -> None:
    async with running(config, store) as first:
        assert (await admin.ask("/schedule main set 15 6 * * 1-5")).startswith(say("Schedule saved", "发布时间已保存"))
        assert cron_fields(slot_triggers(first, "main")[0])["day_of_week"] == "1-5"
    async with running(config, store) as second:  # a new Application on the same database
        [trigger] = slot_triggers(second, "main")
        fields = cron_fields(trigger)
        assert (fields["hour"], fields["minute"], fields["day_of_week"]) == ("6", "15", "1-5")
        assert "15 6 * * 1-5" in await admin.ask("/schedule main")


async def test_pause_and_resume(app: Application, store: Database, admin: Chat, say: Say) -> None:
    assert say("main is paused", "main 已暂停") in await admin.ask("/pause main maintenance window")
    row = channel_row(store, "main")
    assert row.paused and row.paused_reason == "maintenance window"
    assert say("paused (maintenance window)", "已暂停（maintenance window）") in await admin.ask("/channels")
    assert say("is paused", "已暂停") in await admin.ask("/postnow main")
    assert say("posting again", "恢复发布") in await admin.ask("/resume main")
    assert not channel_row(store, "main").paused
    actions = [a[1] for a in audit_actions(store)]
    assert actions[-2:] == ["pause", "resume"]
    assert (await admin.ask("/pause")).startswith(say("Usage: /pause CHANNEL", "用法：/pause 频道"))
    assert (await admin.ask("/resume main now")).startswith(say("Usage: /resume CHANNEL", "用法：/resume 频道"))
    assert say("no channel 'nope'", "没有频道“nope”") in await admin.ask("/resume nope")


async def test_queue_previews_the_next_posts(app: Application, store: Database, admin: Chat, say: Say) -> None:
    summary, *previews = await admin.send("/queue main", replies=3)  # per_slot 2: two previews
    assert summary.plain_text.startswith(say("Queue of main", "main 的队列"))
    assert summary.plain_text.count("• ID ") == 5
    assert "谷歌开源新的编译器" in previews[0].plain_text
    assert "https://news.example.com/compiler" in links(previews[0])
    with store.session() as session:  # a preview plans nothing
        assert session.scalar(select(Post.id)) is None
    assert (await admin.ask("/queue")).startswith(say("Usage: /queue CHANNEL", "用法：/queue 频道"))


async def test_skip_keeps_an_item_out_of_a_channel(app: Application, store: Database, admin: Chat,
                                                    say: Say) -> None:
    compiler = item_id(store, "谷歌开源新的编译器")
    assert say("will not be posted to main", "不会发布到 main") in await admin.ask(f"/skip main {compiler}")
    with store.session() as session:
        assert session.scalars(select(Delivery.skipped).where(Delivery.item_id == compiler)).one()
    summary, *_ = await admin.send("/queue main", replies=3)
    assert "谷歌开源新的编译器" not in summary.plain_text
    assert "already scheduled or sent" in await admin.ask(f"/skip main {compiler}")
    assert say("Which channel?", "哪个频道？") in await admin.ask(f"/skip {compiler}")  # two channels: the name is needed
    assert (await admin.ask("/skip")).startswith(say("Usage: /skip [CHANNEL] ITEM", "用法：/skip [频道] 条目"))
    assert say("no item 999", "没有条目 999") in await admin.ask("/skip main 999")
    assert ("tg:1001", "skip", "channel:main") in audit_actions(store)


def test_skip_needs_no_channel_when_there_is_one() -> None:
    assert skip_target(["7"], ["main"]) == ("main", 7)
    assert skip_target(["main", "7"], ["main", "backup"]) == ("main", 7)
    assert isinstance(skip_target(["7"], ["main", "backup"]), str)
    assert skip_target(["main", "x"], ["main"]) == ""


async def test_postnow_posts_at_once(app: Application, store: Database, admin: Chat,
                                     fake_bot_api: FakeBotApi, say: Say) -> None:
    rust = item_id(store, "Rust 基金会发布年度报告")
    reply = await admin.ask(f"/postnow main {rust}")
    assert say(f"post 1 (items {rust}): sent", f"帖子 1（条目 {rust}）：已发送") in reply
    [post] = fake_bot_api.replies(MAIN_ID)
    assert "Rust 基金会发布年度报告" in post.plain_text
    [shown] = await admin.send(f"/item {rust}")
    assert f"https://t.me/{MAIN_USERNAME}/1" in links(shown)  # where the channel posted it
    assert say("Posted to main", "已发布到 main") in await admin.ask("/postnow main")  # the next due ones
    await fake_bot_api.wait_for(MAIN_ID, 3)  # per_slot 2
    assert say("already posted", "已经发布到") in await admin.ask(f"/postnow main {rust}")
    assert (await admin.ask("/postnow")).startswith(say("Usage: /postnow CHANNEL [ITEM...]", "用法：/postnow 频道 [条目...]"))
    assert (await admin.ask("/postnow main x")).startswith(say("Usage: /postnow", "用法：/postnow"))
    assert say("no item 999", "没有条目 999") in await admin.ask("/postnow main 999")
    assert say("no channel 'nope'", "没有频道“nope”") in await admin.ask("/postnow nope")
    assert [a for a in audit_actions(store) if a[1] == "postnow"][0] == ("tg:1001", "postnow", "channel:main")


async def test_comment_is_stored_and_shown(app: Application, store: Database, admin: Chat, reader: Chat,
                                           say: Say) -> None:
    rust = item_id(store, "Rust 基金会发布年度报告")
    said = await admin.ask(f"/comment {rust} 社区的 <活力> 依旧")
    # Not posted anywhere yet: its next post shows it (no message to edit).
    assert say("its next post shows it", "它的下一帖会显示") in said
    with store.session() as session:
        entry = session.scalars(select(Commentary).where(Commentary.item_id == rust)).one()
        assert (entry.author, entry.text) == ("tg:1001", "社区的 <活力> 依旧")
    assert "社区的 <活力> 依旧" in await reader.ask(f"/item {rust}")
    assert (await admin.ask("/comment")).startswith(say("Usage: /comment ITEM TEXT", "用法：/comment 条目 文字"))
    assert (await admin.ask(f"/comment {rust}")).startswith(say("Usage: /comment", "用法：/comment"))
    assert say("no item 999", "没有条目 999") in await admin.ask("/comment 999 好")


async def test_uncertain_posts_are_resolved_with_buttons(app: Application, store: Database, admin: Chat,
                                                         reader: Chat, fake_bot_api: FakeBotApi, say: Say) -> None:
    assert await admin.ask("/uncertain") == say("No uncertain or failed posts.", "没有结果不确定或失败的帖子。")
    rust = item_id(store, "Rust 基金会发布年度报告")
    # Telegram takes the post but the answer never arrives: the outcome is unknown.
    fake_bot_api.inject("sendMessage", "drop_after_accept", chat_id=MAIN_ID)
    notice, reply = await admin.send(f"/postnow main {rust}", replies=2)
    # A notice has no update to take a language from: zh_CN, until the admin chooses with /lang.
    assert "帖子 1 可能已发出，也可能没有" in notice.plain_text
    assert reply.plain_text.endswith(say("uncertain", "不确定"))

    [listed] = await admin.send("/uncertain")
    assert say("Post 1 · main · uncertain", "帖子 1 · main · 不确定") in listed.plain_text and "Rust" in listed.plain_text
    assert set(buttons(listed)) == {say("✅ confirm sent", "✅ 确认已发送"), say("🔁 resend", "🔁 重新发送"),
                                    say("🗑 drop", "🗑 放弃")}

    refused = await reader.press(listed, "u:drop:1")
    assert refused.text == say(*REFUSAL) and refused.show_alert
    answer = await admin.press(listed, buttons(listed)[say("🔁 resend", "🔁 重新发送")])
    assert say("queued to be sent again", "重新排入发送队列") in answer.text
    assert say("queued to be sent again by tg:1001", "已由 tg:1001 重新排入发送队列") in listed.plain_text
    assert not buttons(listed)
    await fake_bot_api.wait_for(MAIN_ID, 2)  # the drain job sends it again
    assert ("tg:1001", "post-resend", "post:1") in audit_actions(store)
    assert say("already resolved", "已经处理过了") in (await admin.press(listed, "u:drop:1")).text
    assert (await admin.ask("/uncertain all")) == say("Usage: /uncertain", "用法：/uncertain")


@pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:telegram.warnings.PTBDeprecationWarning")
async def test_stats_counts_posts_and_429s(app: Application, store: Database, admin: Chat,
                                           fake_bot_api: FakeBotApi, say: Say) -> None:
    fake_bot_api.inject("sendMessage", "429", retry_after=1, chat_id=MAIN_ID)
    rust = item_id(store, "Rust 基金会发布年度报告")
    assert (await admin.ask(f"/postnow main {rust}")).endswith(say("sent", "已发送"))  # waited the second, then sent
    [reply] = await admin.send("/stats")
    text = reply.plain_text
    assert say("items: 8", "条目：8") in text
    assert say("posts sent: 1 · pending: 0 · failed: 0 · uncertain: 0", "已发帖子：1 · 待发：0 · 失败：0 · 不确定：0") in text
    assert say("429s received: 1", "收到的 429：1") in text and say("backup: never", "backup: 从未") in text
    assert f"https://t.me/{MAIN_USERNAME}/1" in links(reply)
    assert (await admin.ask("/stats please")) == say("Usage: /stats", "用法：/stats")


async def test_ingest_reads_the_archive_again(app: Application, store: Database, admin: Chat,
                                              incoming: Path, reader: Chat, say: Say) -> None:
    (incoming / "2023-03-03-hardcore.md").write_text(DOC_C, encoding="utf-8")
    started, done = await admin.send("/ingest", replies=2)
    assert started.plain_text.startswith(say("Ingesting", "正在导入"))
    assert say("documents: 1 new, 0 updated, 2 unchanged, 0 failed", "文档：新增 1，更新 0，未变 2，失败 0") in done.plain_text
    assert say("items: 1 new", "条目：新增 1") in done.plain_text
    assert "量子计算机又破纪录" in await reader.ask("/latest")
    assert ("tg:1001", "ingest", "archive") in audit_actions(store)
    assert (await admin.ask("/ingest now")) == say("Usage: /ingest", "用法：/ingest")


# ---------------------------------------------------------------------------------------------
# Errors


async def test_errors_apologise_and_tell_the_admins_once(app: Application, admin: Chat, reader: Chat,
                                                         fake_bot_api: FakeBotApi, say: Say) -> None:
    def admin_notices() -> list[str]:  # in zh_CN: the admin chose no language
        return [m.plain_text for m in fake_bot_api.replies(ADMIN) if m.plain_text.startswith("处理 ")]

    apology = say("Sorry, something went wrong; the admins have been told.", "抱歉，出了点问题，管理员已收到通知。")
    for _ in range(2):
        fake_bot_api.inject("sendMessage", "400", chat_id=USER, description="Bad Request: injected for the test")
        assert await reader.ask("/latest") == apology  # the reply failed; the apology went out
    [notice] = admin_notices()
    assert "'/latest'" in notice and "BadRequest: Injected for the test" in notice
    assert "Traceback" not in notice


# ---------------------------------------------------------------------------------------------
# Numbers that are no ids: '²' passes str.isdigit but not int(); a huge one overflows the database

HUGE = "99999999999999999999999"


async def test_ids_that_are_not_numbers_or_too_large_get_the_usage(app: Application, admin: Chat,
                                                                    reader: Chat, say: Say) -> None:
    item_usage = say("Usage: /item ID (the ID in the search results)", "用法：/item 编号（搜索结果里的 ID）")
    for text in ("/item ²", "/item ٣", "/item -1"):
        assert await reader.ask(text) == item_usage, text
    assert await reader.ask(f"/item {HUGE}") == f"ID {HUGE} is too large: at most 2147483647\n{item_usage}"
    assert await reader.ask("/item 2147483647") == say("Nothing found: ID 2147483647",
                                                       "没有找到：ID 2147483647")  # the largest id is one
    assert (await admin.ask("/comment ² text")).startswith(say("Usage: /comment ITEM TEXT", "用法：/comment 条目 文字"))
    assert (await admin.ask(f"/comment {HUGE} text")).startswith(f"ITEM {HUGE} is too large")
    assert (await admin.ask("/postnow main ²")).startswith(say("Usage: /postnow CHANNEL [ITEM...]",
                                                               "用法：/postnow 频道 [条目...]"))
    assert (await admin.ask(f"/postnow main 1 {HUGE}")).startswith(f"ITEM {HUGE} is too large")
    assert (await admin.ask("/skip main ²")).startswith(say("Usage: /skip", "用法：/skip"))
    assert "too large" in await admin.ask(f"/skip main {HUGE}")
    assert not app.bot_data.get("errors_told")  # no error reached the error handler


async def test_forged_offsets_and_buttons_are_answered(app: Application, fake_bot_api: FakeBotApi,
                                                       reader: Chat, admin: Chat, say: Say) -> None:
    for offset in ("²", HUGE):  # inline offsets come back from the client: a forged one starts over
        before = len(fake_bot_api.inline_answers)
        fake_bot_api.push_inline_query(USER, "开源", offset=offset)
        await fake_bot_api.wait_until(lambda before=before: len(fake_bot_api.inline_answers) > before)
        assert len(fake_bot_api.inline_answers[before].results) == 7
    [first] = await reader.send("/search 开源")
    key = buttons(first)[say("next ›", "下一页 ›")].rsplit(":", 1)[1]
    for offset in ("²", HUGE):
        answer = await reader.press(first, f"s:{offset}:{key}")
        assert answer.text == say("Please search again: /search WORDS", "请重新搜索：/search 关键词") and answer.show_alert
    assert (await admin.press(first, "u:drop:²")).text == say("Unknown button.", "未知的按钮。")
    assert (await admin.press(first, f"u:drop:{HUGE}")).text == say("Unknown button.", "未知的按钮。")
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
                                                                    reader: Chat, say: Say) -> None:
    fake_bot_api.inject("answerInlineQuery", "429", retry_after=1)
    fake_bot_api.push_inline_query(USER, "开源")
    await fake_bot_api.wait_until(lambda: len(fake_bot_api.inline_answers) == 1, timeout=10)
    [first] = await reader.send("/search 开源")
    fake_bot_api.inject("answerCallbackQuery", "429", retry_after=1)
    fake_bot_api.inject("editMessageText", "429", retry_after=1)
    await reader.press(first, buttons(first)[say("next ›", "下一页 ›")])
    assert say("page 2", "第 2 页") in first.plain_text
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


# Languages


def lang_help(choice: str) -> str:
    """/lang's list of choices, in the language chosen."""
    return ("\n/lang en — English\n/lang zh — 简体中文\n/lang auto — "
            + ("follow your Telegram settings" if choice == "en" else "跟随你的 Telegram 设置"))


async def test_lang_switches_the_replies_and_is_kept_across_a_restart(config: Config, store: Database, reader: Chat,
                                                                      fake_bot_api: FakeBotApi, language_code: str,
                                                                      say: Say) -> None:
    fake_bot_api.add_user(3003, first_name="Лена", language_code="ru")  # a language the bot does not have
    stranger = Chat(fake_bot_api, 3003)
    own = "en" if language_code == "en" else "zh_CN"
    other, other_word = ("zh_CN", "zh") if own == "en" else ("en", "en")
    usage = {"en": "Usage: /latest", "zh_CN": "用法：/latest"}
    async with running(config, store):
        assert await reader.ask("/lang") == say("Language: English (from your Telegram settings).",
                                                "语言：简体中文（按你的 Telegram 设置）。") + lang_help(own)
        assert await stranger.ask("/lang") == "语言：简体中文（按你的 Telegram 设置）。" + lang_help("zh_CN")
        assert await stranger.ask("/latest please") == usage["zh_CN"]

        assert await reader.ask(f"/lang {other_word}") == {"en": "Language set: English.",
                                                           "zh_CN": "语言已设为：简体中文。"}[other]
        assert await reader.ask("/latest please") == usage[other]
        with store.session() as session:
            assert session.get(UserPref, USER).language == other
    async with running(config, store):  # a new Application, nothing in memory: the choice is in the database
        assert await reader.ask("/latest please") == usage[other]
        assert await reader.ask("/lang") == {"en": "Language: English (chosen with /lang).",
                                             "zh_CN": "语言：简体中文（用 /lang 选择）。"}[other] + lang_help(other)
        assert await stranger.ask("/latest please") == usage["zh_CN"]  # one user's choice is theirs alone

        assert await reader.ask("/lang auto") == say("Language: English (from your Telegram settings).",
                                                     "语言：简体中文（按你的 Telegram 设置）。")
        assert await reader.ask("/latest please") == usage[own]
        assert await reader.ask("/lang fr") == say("There is no language fr.\nUsage: /lang [en|zh|auto]",
                                                   "没有 fr 这种语言。\n用法：/lang [en|zh|auto]")
        assert await reader.ask("/lang en zh") == say("Usage: /lang [en|zh|auto]", "用法：/lang [en|zh|auto]")
    with store.session() as session:
        assert session.get(UserPref, USER) is None


async def test_admin_notices_are_in_the_language_the_admin_chose(app: Application, store: Database, admin: Chat,
                                                                 fake_bot_api: FakeBotApi) -> None:
    rust, compiler = item_id(store, "Rust 基金会发布年度报告"), item_id(store, "谷歌开源新的编译器")
    await admin.send("/lang en")
    fake_bot_api.inject("sendMessage", "drop_after_accept", chat_id=MAIN_ID, times=1)
    notice, _ = await admin.send(f"/postnow main {rust}", replies=2)
    assert notice.plain_text.startswith("Post 1 may or may not have been sent (")
    assert notice.plain_text.endswith("It will not be resent without your word: /uncertain")

    await admin.send("/lang zh")
    fake_bot_api.inject("sendMessage", "drop_after_accept", chat_id=MAIN_ID, times=1)
    notice, _ = await admin.send(f"/postnow main {compiler}", replies=2)
    assert notice.plain_text.startswith("帖子 2 可能已发出，也可能没有（")
    assert notice.plain_text.endswith("没有你的确认不会重发：/uncertain")
