"""Helpers for the publishing tests: a tiny linux.cn archive, configs, bulk items, settling."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import insert, select

from bot.config import BotConfig as Config
from bot.config import config_from_mapping
from digests.store.channel_sync import sync_channels
from digests.store.db import Database
from digests.store.models import PENDING, RETRY, SENDING, Channel, Item, Post, utcnow

ADMIN = 777000111
UNSETTLED = (PENDING, RETRY, SENDING)


# ---------------------------------------------------------------------------------------------
# A tiny archive in the linux.cn style


@dataclass(frozen=True)
class Story:
    title: str
    body: str
    commentary: str


def column_document(article_id: int, number: int, published: str, stories: Sequence[Story]) -> str:
    """A 硬核观察 article: front matter, then per story an image, a ### section, source and 点评."""
    lines = [
        "---",
        "author: 硬核老王",
        "category: 硬核观察",
        f"date: '{published}'",
        "fromurl: ''",
        f"id: {article_id}",
        "islctt: false",
        f"permalink: /article-{article_id}-1.html",
        "tags:",
        "- 开源",
        f"title: '硬核观察 #{number} {stories[0].title}'",
        "titlepic: true",
        "translator: ''",
        "---",
        "",
    ]
    for k, story in enumerate(stories, 1):
        lines += [
            f"![](/data/attachment/album/2024/{article_id}-{k}.jpg)",
            "",
            f"### {story.title}",
            "",
            f"{story.body}，详情见 [公告](https://news.example.org/{article_id}/{k}/notice)。",
            "",
            "> ",
            f"> **[消息来源：示例周报 {k}](https://source.example.org/{article_id}/{k})**",
            "> ",
            "",
            "> ",
            f"> 老王点评：{story.commentary}",
            "> ",
            "",
        ]
    return "\n".join(lines)


def article_document(article_id: int, published: str, title: str, body: str, category: str = "技术") -> str:
    """Any other linux.cn article: one item."""
    return "\n".join([
        "---",
        "author: 某译者",
        f"category: {category}",
        f"date: '{published}'",
        "fromurl: ''",
        f"id: {article_id}",
        "islctt: false",
        f"permalink: /article-{article_id}-1.html",
        "tags:",
        "- 工具",
        f"title: '{title}'",
        "titlepic: false",
        "translator: ''",
        "---",
        "",
        body,
        "",
    ])


COLUMN_ONE = [
    Story("内核合并实时补丁", "实时补丁集在讨论多年之后进入主线", "多年磨一剑。"),
    Story("某数据库换用新许可证", "一个流行的数据库项目宣布更换许可证", "社区又要分叉了。"),
    Story("浏览器默认启用新协议", "主流浏览器开始默认启用一个新的传输协议", "终于等到这一天。"),
]
COLUMN_TWO = [
    Story("发行版放弃旧架构", "一个老牌发行版宣布下个版本不再支持旧架构", "硬件总要退休。"),
    Story("编译器支持新语言标准", "编译器的新版本完整支持了最新的语言标准", "写代码的人有福了。"),
    Story("开源基金会发布年度报告", "基金会发布报告称贡献者人数继续增长", "数字背后是人。"),
]
TECH_TITLE = "用 rsync 做增量备份"


def write_archive(root: Path) -> Path:
    """Two columns (2024-03-01 and 03-02, three stories each) and one 技术 article (03-03)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "column-1.md").write_text(column_document(16001, 1001, "2024-03-01 18:00:00", COLUMN_ONE),
                                      encoding="utf-8")
    (root / "column-2.md").write_text(column_document(16002, 1002, "2024-03-02 18:00:00", COLUMN_TWO),
                                      encoding="utf-8")
    (root / "tech.md").write_text(article_document(16003, "2024-03-03 09:00:00", TECH_TITLE,
                                                   "rsync 只传变化的部分，适合做增量备份。"), encoding="utf-8")
    return root


# ---------------------------------------------------------------------------------------------
# Configuration


def quiet_hours_around(now: datetime, timezone: str, *, inside: bool) -> str:
    """Quiet hours that contain ``now`` (inside) or lie hours away from it, in the channel's zone."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(timezone))
    start, end = (local - timedelta(hours=2), local + timedelta(hours=2)) if inside else \
        (local + timedelta(hours=3), local + timedelta(hours=5))
    return f"{start:%H}:00-{end:%H}:00"


def config_data(db_url: str, *, base_url: str, token: str, channels: list[dict[str, Any]],
                **sections: dict[str, Any]) -> dict[str, Any]:
    """A config mapping for tests: Telegram's limits, fast retries, a short drain interval."""
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "telegram": {"token": token, "base_url": base_url, "admins": [ADMIN], "poll_commands": False,
                     "request_timeout": 5},
        "publish": {"lease_seconds": 30, "backoff_seconds": 0.2, "backoff_max_seconds": 1,
                    "drain_interval_seconds": 0.2},
        "channels": channels,
        "log_level": "WARNING",
    }
    for key, value in sections.items():  # e.g. limits={...}, publish={...}
        data[key] = {**data.get(key, {}), **value}
    return data


RAISED_LIMITS = {"global_per_second": 1000, "channel_per_minute": 100000}


def make_config(*args: Any, **kwargs: Any) -> Config:
    return config_from_mapping(config_data(*args, **kwargs), source="test")


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def sync(db: Database, config: Config, *, now: datetime | None = None) -> None:
    with db.session() as session:
        sync_channels(session, config, now=now)


# ---------------------------------------------------------------------------------------------
# Items in bulk (crash test, workers, bench)


def crash_title(index: int) -> str:
    return f"压力条目 {index:05d} 号"


def insert_items(db: Database, count: int, *, start: int = 0, source: Callable[[int], str] | None = None,
                 title: Callable[[int], str] = crash_title, base: datetime | None = None) -> list[int]:
    """``count`` distinct dated items, oldest first; returns their ids."""
    base = base or datetime(2024, 1, 1).astimezone()
    now = utcnow()
    rows = []
    for i in range(start, start + count):
        rows.append({
            "fingerprint": f"bulk-{i:08d}", "title": title(i), "url": f"https://bulk.example.org/{i}",
            "links": [], "summary": f"第 {i} 条的摘要。", "commentary": "", "image": None,
            "source": source(i) if source else "示例来源", "published_at": base + timedelta(minutes=i),
            "sort_at": base + timedelta(minutes=i), "tags": [], "category": "测试", "kind": "news",
            "author": "", "format": "linuxcn", "removed": False, "created_at": now, "updated_at": now,
        })
    with db.session() as session:
        for offset in range(0, len(rows), 1000):
            session.execute(insert(Item), rows[offset:offset + 1000])
        return list(session.scalars(select(Item.id).where(Item.fingerprint.in_(
            [r["fingerprint"] for r in rows])).order_by(Item.sort_at, Item.id)))


# ---------------------------------------------------------------------------------------------
# Reading the outcome


def posts(db: Database, *, channel_id: int | None = None) -> list[Post]:
    with db.session() as session:
        stmt = select(Post).order_by(Post.id)
        if channel_id is not None:
            stmt = stmt.where(Post.channel_id == channel_id)
        return list(session.scalars(stmt))


def unsettled(db: Database) -> int:
    """Posts still to be sent or in flight, those of paused channels aside (they wait for an admin)."""
    with db.session() as session:
        return len(list(session.scalars(
            select(Post.id).join(Channel, Channel.id == Post.channel_id)
            .where(Post.state.in_(UNSETTLED), Channel.paused.is_(False))
        )))


async def settle(publisher: Any, db: Database, *, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Drain like the drain job does until no post is pending, retrying or sending (paused aside)."""
    deadline = time.monotonic() + timeout
    while True:
        await publisher.drain()
        left = await asyncio.to_thread(unsettled, db)
        if not left:
            return
        if time.monotonic() > deadline:
            states = [(p.id, p.state, p.error) for p in posts(db) if p.state in UNSETTLED]
            raise TimeoutError(f"{left} post(s) still unsettled after {timeout}s: {states[:10]}")
        await asyncio.sleep(interval)


def titles_in(text: str, titles: Sequence[str]) -> list[str]:
    """The given titles in the order they appear in ``text``."""
    found = [(text.find(t), t) for t in titles if t in text]
    return [t for _, t in sorted(found)]


def deliveries_json(stdout: str) -> list[dict[str, Any]]:
    return json.loads(stdout)


@asynccontextmanager
async def running_application(config: Config, db: Database) -> AsyncIterator[Any]:
    """build_application(poll=False), initialised and through its start-up hook, job queue not started."""
    from bot.app import build_application

    application = build_application(config, db, poll=False)
    async with application:
        assert application.post_init is not None
        await application.post_init(application)
        yield application
