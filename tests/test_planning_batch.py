"""The batched planner stores what the per-post planner stored: posts, deliveries, digest numbers, cursors.

Two databases get the same items and channels; one is planned by the per-post planner kept as
the reference (digests.publishing.planning_per_post), the other by plan_slot and plan_slots,
slot after slot, with a late item and an editor's commentary arriving between slots.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from bot.config import config_from_mapping
from digests.clock import utcnow
from digests.formatting.render import make_renderer
from digests.publishing.planning import SlotRequest, plan_slot, plan_slots, select_slot
from digests.publishing.planning_per_post import plan_slot_per_post
from digests.store import open_database
from digests.store.channel_sync import sync_channels
from digests.store.db import Database
from digests.store.items import add_commentary
from digests.store.models import Channel, Delivery, Item, Post
from tests.conftest import fresh_postgres_url

BASE = datetime(2024, 3, 1).astimezone()
SOURCES = ("示例周报", "开源日报", "内核邮件")
CATEGORIES = ("技术", "新闻", "硬核观察")

CHANNELS: list[dict[str, Any]] = [
    {"name": "all", "chat_id": "@all_items", "per_slot": 4},
    {"name": "weekly_photo", "chat_id": "@weekly_photo", "per_slot": 3, "photo": True,
     "select": {"sources": ["示例周报"]}},
    {"name": "digest_long", "chat_id": "@digest_long", "mode": "digest", "per_slot": 12, "summary_length": 1500},
    {"name": "held_tech", "chat_id": "@held_tech", "per_slot": 3, "commentary_policy": "hold",
     "select": {"categories": ["技术", "硬核观察"]}},
    {"name": "digest_newest", "chat_id": "@digest_newest", "mode": "digest", "per_slot": 5,
     "select": {"order": "newest", "sources": ["开源日报", "内核邮件"]}},
    {"name": "paused", "chat_id": "@paused_one", "per_slot": 2},
]
UNNARROWED = {"all", "digest_long", "paused"}  # no source/category/format rule: the cursor is the same too


def item_rows(start: int, count: int, *, late: bool = False) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    for i in range(start, start + count):
        when = BASE - timedelta(days=30) if late else BASE + timedelta(hours=i)
        rows.append({
            "fingerprint": f"batch-{i:05d}", "title": f"第 {i} 号条目：某项目发布 {i}.0 版",
            "url": f"https://news.example.org/{i}", "links": [f"https://mirror.example.org/{i}"] if i % 4 == 0 else [],
            "summary": ("这一版改进了调度器与文件系统，" * (1 + i % 9) * 6) + f"详情见第 {i} 号公告。",
            "commentary": f"老王点评：第 {i} 条值得一看。" if i % 3 == 0 else "",
            "image": f"https://img.example.org/{i}.jpg" if i % 2 == 0 else None,
            "source": SOURCES[i % 3], "published_at": when, "sort_at": when, "tags": ["开源", f"t{i % 5}"],
            "category": CATEGORIES[i % 3], "kind": "news", "author": "", "format": "linuxcn", "removed": False,
            "created_at": now, "updated_at": now,
        })
    return rows


def add_items(db: Database, rows: list[dict[str, Any]]) -> None:
    with db.session() as session:
        session.execute(insert(Item), rows)


def prepare(url: str) -> Database:
    db = open_database(url)
    config = config_from_mapping({"channels": CHANNELS})
    with db.session() as session:
        sync_channels(session, config, now=BASE - timedelta(days=400))
        session.scalars(select(Channel).where(Channel.name == "paused")).one().paused = True
    add_items(db, item_rows(0, 60))
    return db


def stored(db: Database) -> dict[str, Any]:
    """Everything planning writes, by channel name and in each channel's order of posts."""
    with db.session() as session:
        names = {c.id: c.name for c in session.scalars(select(Channel))}
        post_rows = [
            (names[p.channel_id], p.state, p.mode, p.html, p.photo, list(p.item_ids), p.part, p.digest_number,
             p.slot_at, p.sent_at is not None)
            for p in session.scalars(select(Post).order_by(Post.channel_id, Post.id))]
        index = {p.id: n for n, p in enumerate(session.scalars(select(Post).order_by(Post.channel_id, Post.id)))}
        deliveries = sorted(
            (names[d.channel_id], d.item_id, index[d.post_id] if d.post_id else None, d.position, d.skipped)
            for d in session.scalars(select(Delivery)))
        channels = {c.name: (c.digest_counter, c.selected_at, c.selection_cursor if c.name in UNNARROWED else None)
                    for c in session.scalars(select(Channel))}
    return {"posts": post_rows, "deliveries": deliveries, "channels": channels}


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reference.db'}", f"sqlite:///{tmp_path / 'batched.db'}"
    base = request.getfixturevalue("postgres_base_url")
    return fresh_postgres_url(base), fresh_postgres_url(base)


@pytest.mark.parametrize("how", ["batch", "one_by_one"])
def test_batched_planner_stores_what_the_per_post_planner_stored(two_urls: tuple[str, str], how: str) -> None:
    reference, batched = (prepare(url) for url in two_urls)
    render = make_renderer()
    names = [c["name"] for c in CHANNELS]
    start = utcnow().replace(second=0, microsecond=0)
    try:
        for step in range(4):
            slot_at, now = start + timedelta(hours=step), start + timedelta(hours=step, seconds=5)
            if step == 2:  # between slots: an old article ingested late, an editor's word on a held item
                for db in (reference, batched):
                    add_items(db, item_rows(1000, 3, late=True))
                    with db.session() as session:
                        add_commentary(session, 2, "编辑点评：补上的点评。", author="editor", now=now)
            for name in names:
                plan_slot_per_post(reference, name, render, now=now, slot_at=slot_at)
            selections = {name: select_slot(batched, name, now=now, slot_at=slot_at) for name in names}
            if how == "batch":
                planned = plan_slots(batched, [SlotRequest(name, slot_at, selections[name]) for name in names],
                                     render, now=now)
            else:
                planned = {name: plan_slot(batched, name, render, now=now, slot_at=slot_at,
                                           selection=selections[name] if step % 2 else None) for name in names}
            assert planned["paused"] == [] and planned["all"]
            # The same slot fired again (a second worker) plans nothing.
            again = plan_slots(batched, [SlotRequest(name, slot_at) for name in names], render, now=now)
            assert all(posts == [] for posts in again.values())
        # An admin's /postnow of named items, the paused channel's included.
        for db, planner in ((reference, plan_slot_per_post), (batched, plan_slot)):
            planner(db, "paused", render, now=start + timedelta(hours=5), item_ids=[1, 2, 3])
            planner(db, "all", render, now=start + timedelta(hours=5), item_ids=[1, 59, 58])
        old, new = stored(reference), stored(batched)
    finally:
        reference.dispose()
        batched.dispose()

    assert new["posts"] == old["posts"]
    assert new["deliveries"] == old["deliveries"]
    assert new["channels"] == old["channels"]
    # The scenario is the one described: several parts in a digest, photos, held items, numbers.
    assert any(row[0] == "digest_long" and row[6] > 1 for row in new["posts"])
    assert any(row[0] == "weekly_photo" and row[4] for row in new["posts"])
    assert {row[7] for row in new["posts"] if row[0] == "digest_newest"} == {1, 2, 3, 4}
    assert any(row[0] == "paused" for row in new["posts"])


def test_dry_run_batch_plans_without_deliveries_or_cursor(tmp_path: Path) -> None:
    """A dry run of many channels stores its posts as dry-run and moves no cursor, like one channel's."""
    reference, batched = prepare(f"sqlite:///{tmp_path / 'r.db'}"), prepare(f"sqlite:///{tmp_path / 'b.db'}")
    render = make_renderer()
    names = [c["name"] for c in CHANNELS]
    now = utcnow()
    try:
        for name in names:
            plan_slot_per_post(reference, name, render, now=now, dry_run=True)
        plan_slots(batched, [SlotRequest(name) for name in names], render, now=now, dry_run=True)
        old, new = stored(reference), stored(batched)
    finally:
        reference.dispose()
        batched.dispose()
    assert new == old
    assert new["deliveries"] == [] and new["posts"]


def test_a_rare_source_is_found_past_the_rows_one_selection_may_read(tmp_path: Path) -> None:
    """A channel of one rare source plans its items though 20,000 others' items sort before them.

    Selection reads at most 20,000 rows a slot; it used to read the other sources' rows too and
    give up before reaching the channel's, so such a channel posted nothing, slot after slot.
    """
    from tests.publishing_helpers import insert_items

    db = open_database(f"sqlite:///{tmp_path / 'rare.db'}")
    try:
        with db.session() as session:
            sync_channels(session, config_from_mapping({"channels": [
                {"name": "rare", "chat_id": "@rare_source", "per_slot": 3, "select": {"sources": ["稀有来源"]}}]}))
        insert_items(db, 20_100, source=lambda i: "稀有来源" if i >= 20_096 else "常见来源")
        planned = plan_slot(db, "rare", make_renderer(), slot_at=utcnow().replace(second=0, microsecond=0))
    finally:
        db.dispose()
    assert [len(p.item_ids) for p in planned] == [1, 1, 1]
