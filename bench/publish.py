"""Publishing: send rate against Telegram's ceiling, 429s, and the cost of picking the next items.

1. Rate. A fake Bot API (its own process) enforces 30 messages/s overall and 20/min per channel;
   200 channels hold 2,000 due posts (10 each), so the overall limit is the ceiling: 30/s, about
   67 s for all. Prints the achieved rate as a ratio of the ceiling (target >= 0.9) and the 429s
   received (target 0).
2. Selection. ``digests.publishing.due.due_items`` for a fresh channel and for one with a long delivered
   history, at 100,000 and 1,000,000 stored items (target < 10 ms at 1,000,000), against two
   baselines measured in the same run: the same query without the channel's cursor, and a full
   scan (every undelivered item read and sorted). SQLite always; PostgreSQL with --pg-url or
   TEST_DATABASE_URL.
3. Planning. 200 channels of 10 due posts each (one source of 200 each), planned by the per-post
   planner it replaced (digests.publishing.planning_per_post, the baseline: selection reading
   every row, a query per group, a flush per post), by plan_slot one channel at a time after
   select_slot (what a slot's job does), and by plan_slots for all of them in one batch; ms a
   post, wall and CPU, alternating rounds, each on a fresh database; the stored posts of each
   path compared with the baseline's. SQLite, and PostgreSQL as in 2 (target <= 2 ms a post).

    .venv/bin/python bench/publish.py [--quick] [--concurrency N] [--skip-rate] [--skip-selection]
                                      [--skip-planning]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import exists, insert, select, text  # noqa: E402
from telegram import Bot  # noqa: E402
from telegram.request import HTTPXRequest  # noqa: E402

from bot.config import config_from_mapping  # noqa: E402
from bot.publisher import Publisher  # noqa: E402
from digests.channels import settings_hash, settings_of  # noqa: E402
from digests.formatting.render import make_renderer  # noqa: E402
from digests.publishing.due import due_items  # noqa: E402
from digests.publishing.planning import SlotRequest, plan_slot, plan_slots, select_slot  # noqa: E402
from digests.publishing.planning_per_post import plan_slot_per_post  # noqa: E402
from digests.store import open_database  # noqa: E402
from digests.store.channel_sync import sync_channels  # noqa: E402
from digests.store.channels import get_channel  # noqa: E402
from digests.store.db import Database  # noqa: E402
from digests.store.models import Delivery, Item, Post, utcnow  # noqa: E402
from tests.fakebotapi import FakeBotApiProcess  # noqa: E402
from tests.publishing_helpers import insert_items, settle  # noqa: E402

GLOBAL_PER_SECOND = 30
CHANNEL_PER_MINUTE = 20
BASE = datetime(2015, 1, 1, tzinfo=UTC)
STRIDE = 7919  # a prime: sort order is a permutation of insertion order, as after a real ingest


# ---------------------------------------------------------------------------------------------
# 1. Send rate

# The fake in its own process, without the state file the test runner keeps (rewriting it after
# every message would make the fake, not the publisher, the bottleneck here).
_FAKE = """
import signal, threading
from tests.fakebotapi.server import FakeBotApi, RateLimits
fake = FakeBotApi(limits=RateLimits(global_limit={g}, group_limit={c})).start()
print(f"listening on {{fake.url}}", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
while not stop.wait(0.2):
    pass
fake.stop()
"""


def fake_process(tmp: str) -> FakeBotApiProcess:
    fake = FakeBotApiProcess(Path(tmp) / "unused.json")
    fake._args = [sys.executable, "-c", _FAKE.format(g=GLOBAL_PER_SECOND, c=CHANNEL_PER_MINUTE)]
    return fake



async def publish_rate(channels: int, posts: int, concurrency: int) -> dict[str, float]:
    per_channel = posts // channels
    with tempfile.TemporaryDirectory() as tmp, fake_process(tmp) as fake:
        for k in range(channels):
            fake.control("channel", chat_id=-1005000000000 - k, title=f"bench {k}")
        config = config_from_mapping({
            "database": {"url": f"sqlite:///{Path(tmp) / 'bench.db'}"},
            "telegram": {"token": fake.token, "base_url": fake.base_url, "request_timeout": 10},
            "limits": {"global_per_second": GLOBAL_PER_SECOND, "channel_per_minute": CHANNEL_PER_MINUTE},
            "publish": {"concurrency": concurrency},
            "channels": [{"name": f"c{k:03d}", "chat_id": -1005000000000 - k, "per_slot": per_channel,
                          "select": {"sources": [f"s{k}"]}} for k in range(channels)],
        })
        db = open_database(config.database.url)
        with db.session() as session:
            sync_channels(session, config)
        insert_items(db, channels * per_channel, source=lambda i: f"s{i % channels}")
        started = time.perf_counter()
        render = make_renderer()
        for k in range(channels):
            plan_slot(db, f"c{k:03d}", render)
        planning = time.perf_counter() - started

        request = HTTPXRequest(connection_pool_size=concurrency + 4, read_timeout=10, write_timeout=10,
                               connect_timeout=10)
        async with Bot(fake.token, base_url=fake.base_url, request=request) as bot:
            publisher = Publisher(db, config, bot)
            started = time.perf_counter()
            await settle(publisher, db, timeout=3600, interval=0.05)
            elapsed = time.perf_counter() - started
        state = fake.state()
        db.dispose()
    sent = len(state["sent"])
    arrivals = sorted(m["received_at"] for m in state["sent"])
    # Each channel's posts fit its window at once (<= 20), so only the overall limit binds.
    assert per_channel <= CHANNEL_PER_MINUTE
    ceiling = GLOBAL_PER_SECOND
    return {"sent": sent, "elapsed": elapsed, "rate": sent / elapsed, "ceiling": ceiling,
            "ratio": sent / elapsed / ceiling, "count_429": state["count_429"],
            "early_retries": state["early_retries"], "planning": planning,
            "span": arrivals[-1] - arrivals[0] if arrivals else 0.0,
            "flood_waits": publisher.stats.flood_waits}


# ---------------------------------------------------------------------------------------------
# 2. Selection cost


def build_items(db: Database, count: int) -> None:
    """``count`` items by one INSERT ... SELECT: titles, urls and sources vary, dates are shuffled."""
    if db.dialect == "sqlite":
        sql = f"""
            WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count})
            INSERT INTO items (fingerprint, title, url, links, summary, commentary, source, published_at, sort_at,
                               tags, category, kind, author, format, removed, created_at, updated_at)
            SELECT 'fp' || x, '条目 ' || x || ' 号：某项目发布新版本', 'https://bench.example.org/' || x, '[]',
                   '摘要 ' || x, '', 'source ' || (x % 50), s, s, '[]',
                   CASE x % 3 WHEN 0 THEN '硬核观察' WHEN 1 THEN '技术' ELSE '新闻' END, 'news', '', 'linuxcn', 0,
                   '2024-01-01 00:00:00.000000', '2024-01-01 00:00:00.000000'
            FROM (SELECT x, strftime('%Y-%m-%d %H:%M:%S', {int(BASE.timestamp())} + ((x * {STRIDE}) % {count}) * 60,
                                     'unixepoch') || '.000000' AS s FROM n)
        """
    else:
        sql = f"""
            INSERT INTO items (fingerprint, title, url, links, summary, commentary, source, published_at, sort_at,
                               tags, category, kind, author, format, removed, created_at, updated_at)
            SELECT 'fp' || x, '条目 ' || x || ' 号：某项目发布新版本', 'https://bench.example.org/' || x, '[]',
                   '摘要 ' || x, '', 'source ' || (x % 50), s, s, '[]',
                   CASE x % 3 WHEN 0 THEN '硬核观察' WHEN 1 THEN '技术' ELSE '新闻' END, 'news', '', 'linuxcn', false,
                   '2024-01-01 00:00:00+00', '2024-01-01 00:00:00+00'
            FROM (SELECT x, to_timestamp({int(BASE.timestamp())} + ((x::bigint * {STRIDE}) % {count}) * 60) AS s
                  FROM generate_series(1, {count}) AS x) AS g
        """
    with db.engine.begin() as conn:
        conn.execute(text(sql))
        if db.dialect == "postgresql":
            conn.execute(text("ANALYZE items"))


def add_history(db: Database, name: str, delivered: int, *, newest: bool) -> None:
    """``delivered`` items already sent to the channel, and its cursor where that left it."""
    with db.session() as session:
        channel = get_channel(session, name)
        sort = (Item.sort_at.desc(), Item.id.desc()) if newest else (Item.sort_at, Item.id)
        ids = select(Item.id).order_by(*sort).limit(delivered).subquery()
        session.execute(insert(Delivery).from_select(
            ["channel_id", "item_id", "position", "skipped", "created_at"],
            select(text(str(channel.id)), ids.c.id, text("0"), text("false" if db.dialect != "sqlite" else "0"),
                   text("CURRENT_TIMESTAMP")),
        ))
        last = session.execute(select(Item.sort_at, Item.id).order_by(*sort).offset(delivered - 1).limit(1)).one()
        channel.selection_cursor = {"rules": settings_hash(settings_of(channel)), "at": last[0].isoformat(),
                                    "id": last[1]}
        channel.selected_at = utcnow()
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE deliveries"))


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm the caches once (and the full scan is then timed once: it takes seconds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def selection_costs(db: Database, name: str, runs: int) -> dict[str, float]:
    def pick() -> None:
        with db.session() as session:
            channel = get_channel(session, name)
            items = due_items(session, channel, limit=10)
            assert len(items) == 10

    def without_cursor() -> None:
        with db.session() as session:
            channel = get_channel(session, name)
            newest = settings_of(channel).select.order == "newest"
            sort = (Item.sort_at.desc(), Item.id.desc()) if newest else (Item.sort_at, Item.id)
            undelivered = ~exists().where(Delivery.channel_id == channel.id, Delivery.item_id == Item.id)
            rows = session.scalars(select(Item).where(Item.removed.is_(False), undelivered).order_by(*sort).limit(10))
            assert len(list(rows)) == 10

    def full_scan() -> None:
        with db.session() as session:
            channel = get_channel(session, name)
            newest = settings_of(channel).select.order == "newest"
            done = set(session.scalars(select(Delivery.item_id).where(Delivery.channel_id == channel.id)))
            rows = [r for r in session.execute(select(Item.id, Item.sort_at).where(Item.removed.is_(False)))
                    if r.id not in done]
            rows.sort(key=lambda r: (r.sort_at, r.id), reverse=newest)
            assert len(rows[:10]) == 10

    return {"due_items": median_ms(pick, runs), "no_cursor": median_ms(without_cursor, runs),
            "full_scan": median_ms(full_scan, 1)}


def selection_bench(url: str, count: int, history: int, runs: int) -> dict[str, dict[str, float]]:
    db = open_database(url)
    try:
        started = time.perf_counter()
        build_items(db, count)
        built = time.perf_counter() - started
        config = config_from_mapping({"channels": [
            {"name": "fresh", "chat_id": "@fresh_channel"},
            {"name": "fresh_newest", "chat_id": "@fresh_newest", "select": {"order": "newest"}},
            {"name": "history", "chat_id": "@history_channel"},
            {"name": "history_newest", "chat_id": "@history_newest", "select": {"order": "newest"}},
        ]})
        with db.session() as session:
            sync_channels(session, config, now=datetime(2024, 1, 1, tzinfo=UTC) - timedelta(days=1))
        add_history(db, "history", history, newest=False)
        add_history(db, "history_newest", history, newest=True)
        results = {name: selection_costs(db, name, runs)
                   for name in ("fresh", "fresh_newest", "history", "history_newest")}
        results["_build"] = {"seconds": built}
        return results
    finally:
        db.dispose()


def fresh_pg_url(base: str) -> str:
    from tests.conftest import fresh_postgres_url

    return fresh_postgres_url(base)


# ---------------------------------------------------------------------------------------------
# 3. Planning cost


def planning_db(url: str, channels: int, per_channel: int) -> Database:
    config = config_from_mapping({"channels": [
        {"name": f"c{k:04d}", "chat_id": -1005000000000 - k, "per_slot": per_channel,
         "select": {"sources": [f"s{k}"]}} for k in range(channels)]})
    db = open_database(url)
    with db.session() as session:
        sync_channels(session, config)
    insert_items(db, channels * per_channel, source=lambda i: f"s{i % channels}")
    return db


def planned_rows(db: Database) -> list[tuple[Any, ...]]:
    with db.session() as session:
        return [(p.channel_id, p.html, p.photo, list(p.item_ids), p.part, p.digest_number, p.slot_at)
                for p in session.scalars(select(Post).order_by(Post.channel_id, Post.id))]


def plan_with(path: str, db: Database, names: list[str], slot_at: datetime) -> int:
    render = make_renderer()
    now = utcnow()
    if path == "per-post (baseline)":
        return sum(len(plan_slot_per_post(db, name, render, now=now, slot_at=slot_at)) for name in names)
    selections = {name: select_slot(db, name, now=now, slot_at=slot_at) for name in names}
    if path == "plan_slot each":
        return sum(len(plan_slot(db, name, render, now=now, slot_at=slot_at, selection=selections[name]))
                   for name in names)
    batch = plan_slots(db, [SlotRequest(name, slot_at, selections[name]) for name in names], render, now=now)
    return sum(len(planned) for planned in batch.values())


PLANNERS = ("per-post (baseline)", "plan_slot each", "plan_slots batch")


def planning_bench(make_url: Callable[[str], str], channels: int, per_channel: int, rounds: int
                   ) -> dict[str, dict[str, float]]:
    """ms a post of each planner, median of rounds run in turn; 'same' is 1.0 when its posts equal the baseline's."""
    names = [f"c{k:04d}" for k in range(channels)]
    slot_at = utcnow().replace(second=0, microsecond=0)
    walls: dict[str, list[float]] = {p: [] for p in PLANNERS}
    cpus: dict[str, list[float]] = {p: [] for p in PLANNERS}
    same = dict.fromkeys(PLANNERS, 1.0)
    for n in range(rounds):
        baseline: list[tuple[Any, ...]] | None = None
        for path in PLANNERS:
            db = planning_db(make_url(f"{n}-{PLANNERS.index(path)}"), channels, per_channel)
            try:
                wall, cpu = time.perf_counter(), time.process_time()
                count = plan_with(path, db, names, slot_at)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert count == channels * per_channel, (path, count)
                walls[path].append(wall * 1000 / count)
                cpus[path].append(cpu * 1000 / count)
                rows = planned_rows(db)
                if baseline is None:
                    baseline = rows
                elif rows != baseline:
                    same[path] = 0.0
            finally:
                db.dispose()
    return {path: {"wall": statistics.median(walls[path]), "cpu": statistics.median(cpus[path]),
                   "same": same[path]} for path in PLANNERS}


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run: 40 channels, 400 posts, "
                        "10,000 and 100,000 items")
    parser.add_argument("--concurrency", type=int, default=None, help="publish.concurrency (default: the "
                        "config default)")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="PostgreSQL for the selection part (default: $TEST_DATABASE_URL)")
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--skip-selection", action="store_true")
    parser.add_argument("--skip-planning", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="planning: rounds of the three planners")
    args = parser.parse_args()
    channels, posts = (40, 400) if args.quick else (200, 2000)
    sizes = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    history = 5_000 if args.quick else 50_000
    concurrency = args.concurrency or config_from_mapping({}).publish.concurrency

    if not args.skip_rate:
        print(f"1. send rate: {posts} due posts in {channels} channels, fake enforcing "
              f"{GLOBAL_PER_SECOND}/s overall and {CHANNEL_PER_MINUTE}/min per channel, "
              f"publish.concurrency {concurrency}")
        r = asyncio.run(publish_rate(channels, posts, concurrency))
        print(f"   planned {posts} posts in {r['planning']:.1f} s (render + commit, not timed below)")
        print(f"   sent {r['sent']} in {r['elapsed']:.1f} s: {r['rate']:.1f}/s, ceiling {r['ceiling']:.0f}/s, "
              f"ratio {r['ratio']:.2f} (target >= 0.90)")
        print(f"   first to last arrival {r['span']:.1f} s; 429s received {r['count_429']} (target 0), "
              f"sent before retry_after {r['early_retries']}")

    if not args.skip_planning:
        plan_channels = 40 if args.quick else 200
        print(f"3. planning {plan_channels * 10} posts: {plan_channels} channels x 10 (one source of "
              f"{plan_channels} each), ms a post, median of {args.rounds} rounds, planners run in turn")
        with tempfile.TemporaryDirectory() as tmp:
            plan_backends: list[tuple[str, Callable[[str], str]]] = [
                ("sqlite", lambda tag: f"sqlite:///{Path(tmp) / f'plan{tag}.db'}")]
            if args.pg_url:
                plan_backends.append(("postgresql", lambda tag: fresh_pg_url(args.pg_url)))
            for backend, make_plan_url in plan_backends:
                results = planning_bench(make_plan_url, plan_channels, 10, args.rounds)
                base = results[PLANNERS[0]]
                for path, cost in results.items():
                    print(f"   {backend:<10} {path:<20} {cost['wall']:6.2f} ms wall {cost['cpu']:6.2f} ms CPU "
                          f"({base['wall'] / cost['wall']:5.1f}x)  posts as the baseline's: "
                          f"{'yes' if cost['same'] else 'NO'}")

    if not args.skip_selection:
        backends = [("sqlite", lambda n, tmp: f"sqlite:///{Path(tmp) / f'sel{n}.db'}")]
        if args.pg_url:
            backends.append(("postgresql", lambda n, tmp: fresh_pg_url(args.pg_url)))
        print(f"2. due_items(limit=10), median of runs; history = {history:,} delivered items; "
              "baselines: same query without the cursor, full scan")
        for backend, make_url in backends:
            for count in sizes:
                with tempfile.TemporaryDirectory() as tmp:
                    results = selection_bench(make_url(count, tmp), count, history, runs=30)
                print(f"   {backend} {count:>9,} items (built in {results.pop('_build')['seconds']:.1f} s)")
                for name, cost in results.items():
                    print(f"      {name:<15} due_items {cost['due_items']:7.2f} ms | no cursor "
                          f"{cost['no_cursor']:8.2f} ms ({cost['no_cursor'] / cost['due_items']:6.1f}x) | "
                          f"full scan {cost['full_scan']:9.1f} ms ({cost['full_scan'] / cost['due_items']:7.0f}x)")


if __name__ == "__main__":
    main()
