"""Many channels on PostgreSQL, two workers: every slot planned once, every post sent once, at the ceiling.

--channels channels (default 10,000) of --slots cron slots each, --per-slot posts a slot; the
items are there before the first slot. Two worker processes, each a Publisher behind the
scheduler's own slot entry point (bot.scheduler.run_slot, as its JobQueue jobs call it; a job
still running when its next slot fires is skipped, as max_instances=1 does) and the periodic
drain job, fire the same slots at the same moments, --slot-gap seconds apart, against a fake
Bot API process that enforces 30 messages/s overall and 20/min a chat. Reported:
- slots planned once: posts per (channel, slot) (each must be --per-slot), slots missing;
- duplicates: items sent more than once (target 0), posts sent twice;
- the send rate over the run against the 30/s ceiling, and the 429s received;
- fire -> first send of each (channel, slot), p50/p95, and fire -> planned (the slot's posts
  committed), p50/p95;
- each worker's peak RSS (VmHWM).
Until the send window is shared through the database, each worker allows 30/s of its own, so
the fake's 429s count what the two together overshoot.

    .venv/bin/python bench/channels.py [--channels N] [--slots K] [--per-slot P] [--slot-gap S]
                                      [--pg-url URL]        (default: $TEST_DATABASE_URL)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from bot.config import BotConfig, config_from_mapping  # noqa: E402
from digests.store import open_database  # noqa: E402
from digests.store.channel_sync import sync_channels  # noqa: E402
from digests.store.models import Item, Post  # noqa: E402

GLOBAL_PER_SECOND = 30
CHANNEL_PER_MINUTE = 20
FIRST_CHAT = -1006000000000
TITLE = re.compile(r"频道条目 \d{7} 号")
SCHEDULE = ["0 9 * * *", "0 13 * * *", "0 18 * * *", "0 21 * * *"]

_FAKE = """
import json, signal, sys, threading
from tests.fakebotapi.server import FakeBotApi, RateLimits
fake = FakeBotApi(limits=RateLimits(global_limit={g}, group_limit={c}))
for k in range({n}):
    fake.add_channel({first} - k, title=f"bench {{k}}")
fake.start()
print(f"listening on {{fake.url}}", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
while not stop.wait(0.2):
    pass
with fake._lock:
    summary = {{"sent": [[m.chat_id, m.received_at, m.plain_text] for m in fake._records.sent],
               "count_429": len(fake._flood.throttled), "early_retries": fake._flood.early_retries}}
with open({out!r}, "w", encoding="utf-8") as f:
    json.dump(summary, f, ensure_ascii=False)
fake.stop()
"""


def title(i: int) -> str:
    return f"频道条目 {i:07d} 号"


def config_for(url: str, base_url: str, token: str, channels: int, per_slot: int, concurrency: int = 1) -> BotConfig:
    return config_from_mapping({
        "publish": {"concurrency": concurrency},
        "database": {"url": url},
        "telegram": {"token": token, "base_url": base_url, "request_timeout": 20, "poll_commands": False},
        "limits": {"global_per_second": GLOBAL_PER_SECOND, "channel_per_minute": CHANNEL_PER_MINUTE},
        "log_level": "WARNING",
        "channels": [{"name": f"ch{k:05d}", "chat_id": FIRST_CHAT - k, "per_slot": per_slot,
                      "schedule": SCHEDULE, "select": {"sources": [f"s{k}"]}} for k in range(channels)],
    })


# ---------------------------------------------------------------------------------------------
# A worker process


def vm_status(key: str) -> int:
    """A /proc/self/status figure in kB (VmHWM: the peak resident set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


async def work(spec: dict[str, Any]) -> dict[str, Any]:
    from telegram import Bot
    from telegram.request import HTTPXRequest

    from bot import scheduler
    from bot.publisher import Publisher
    from tests.publishing_helpers import unsettled

    config = config_for(spec["url"], spec["base_url"], spec["token"], spec["channels"], spec["per_slot"],
                        spec["concurrency"])
    db = open_database(spec["url"], migrate=False)
    names = [c.name for c in config.channels]
    request = HTTPXRequest(connection_pool_size=config.publish.concurrency + 4, read_timeout=20,
                           write_timeout=20, connect_timeout=20)
    skipped = 0
    async with Bot(spec["token"], base_url=spec["base_url"], request=request) as bot:
        publisher = Publisher(db, config, bot, worker=spec["worker"])
        application = SimpleNamespace(bot_data={"db": db, "publisher": publisher, "config": config})
        running: dict[str, asyncio.Task[None]] = {}
        stop = asyncio.Event()

        async def drain_job() -> None:  # the JobQueue's drain job: every drain_interval_seconds, one at a time
            while not stop.is_set():
                await publisher.drain()
                try:
                    await asyncio.wait_for(stop.wait(), config.publish.drain_interval_seconds)
                except TimeoutError:
                    pass

        drainer = asyncio.create_task(drain_job())
        for fire_at, slot_iso in zip(spec["fire_at"], spec["slots"], strict=True):
            await asyncio.sleep(max(0.0, fire_at - time.time()))
            slot_at = datetime.fromisoformat(slot_iso)
            for name in names:  # every channel's job fires at this minute
                if name in running and not running[name].done():
                    skipped += 1  # max_instances=1: APScheduler skips this run
                    continue
                running[name] = asyncio.create_task(scheduler.run_slot(application, name, slot_at))
        await asyncio.gather(*running.values())
        deadline = time.time() + spec["timeout"]
        while time.time() < deadline and await asyncio.to_thread(unsettled, db):
            await asyncio.sleep(0.5)
        stop.set()
        await drainer
    db.dispose()
    return {"worker": spec["worker"], "sent": publisher.stats.sent, "flood_waits": publisher.stats.flood_waits,
            "skipped_runs": skipped, "vm_hwm_kb": vm_status("VmHWM"), "vm_rss_kb": vm_status("VmRSS")}


# ---------------------------------------------------------------------------------------------
# The run


def prepare(url: str, channels: int, slots: int, per_slot: int) -> float:
    started = time.perf_counter()
    config = config_for(url, "http://unused/bot", "1:unused", channels, per_slot)
    db = open_database(url)
    with db.session() as session:
        sync_channels(session, config, now=datetime(2024, 1, 1, tzinfo=UTC))
    now = datetime.now(UTC)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    count = channels * slots * per_slot
    with db.session() as session:
        for offset in range(0, count, 5000):
            session.execute(insert(Item), [{
                "fingerprint": f"chan-{i:08d}", "title": title(i), "url": f"https://bench.example.org/{i}",
                "links": [], "summary": f"第 {i} 条的摘要：某项目发布了新版本。", "commentary": "", "image": None,
                "source": f"s{i % channels}", "published_at": base + timedelta(seconds=i),
                "sort_at": base + timedelta(seconds=i), "tags": [], "category": "新闻", "kind": "news",
                "author": "", "format": "linuxcn", "removed": False, "created_at": now, "updated_at": now,
            } for i in range(offset, min(count, offset + 5000))])
    db.dispose()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def as_epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def report(url: str, args: argparse.Namespace, fire_at: list[float], slots: list[str], sent: dict[str, Any],
           workers: list[dict[str, Any]]) -> None:
    db = open_database(url, migrate=False)
    with db.session() as session:
        rows = session.execute(select(Post.channel_id, Post.slot_at, Post.state, Post.sent_at, Post.created_at,
                                      Post.message_id)).all()
    db.dispose()
    fired = {datetime.fromisoformat(s): f for s, f in zip(slots, fire_at, strict=True)}
    per_slot = Counter((channel_id, as_epoch(slot_at)) for channel_id, slot_at, *_ in rows)
    expected = args.channels * args.slots
    wrong = sum(1 for n in per_slot.values() if n != args.per_slot)
    first_send: dict[tuple[int, float], float] = {}
    planned_at: dict[tuple[int, float], float] = {}
    for channel_id, slot_at, _state, sent_at, created_at, _message in rows:
        key = (channel_id, as_epoch(slot_at))
        planned_at[key] = min(planned_at.get(key, float("inf")), as_epoch(created_at))
        if sent_at is not None:
            first_send[key] = min(first_send.get(key, float("inf")), as_epoch(sent_at))
    fire_of = {as_epoch(s): f for s, f in fired.items()}
    to_send = [first_send[k] - fire_of[k[1]] for k in first_send]
    to_plan = [planned_at[k] - fire_of[k[1]] for k in planned_at]
    states = Counter(state for _c, _s, state, *_ in rows)
    titles = Counter(found for _chat, _at, text in sent["sent"] for found in TITLE.findall(text))
    duplicates = sum(n - 1 for n in titles.values() if n > 1)
    arrivals = sorted(at for _chat, at, _text in sent["sent"])
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    rate = len(arrivals) / span if span else float("nan")
    print(f"   slots: {len(per_slot):,} of {expected:,} planned, {wrong} with other than {args.per_slot} "
          f"post(s); posts {len(rows):,} ({dict(states)})")
    print(f"   sent {len(arrivals):,} messages; items sent more than once: {duplicates} (target 0)")
    print(f"   rate first to last arrival: {rate:.1f}/s over {span:.0f} s, ceiling {GLOBAL_PER_SECOND}/s, ratio "
          f"{rate / GLOBAL_PER_SECOND:.2f}; 429s received {sent['count_429']} (two workers, each with its "
          f"own 30/s window), sent before retry_after {sent['early_retries']}")
    print(f"   fire -> batch began planning (created_at) p50 {percentile(to_plan, 0.5):7.1f} s  p95 {percentile(to_plan, 0.95):7.1f} s  "
          f"max {max(to_plan, default=float('nan')):7.1f} s")
    print(f"   fire -> 1st send p50 {percentile(to_send, 0.5):7.1f} s  p95 {percentile(to_send, 0.95):7.1f} s  "
          f"(at 30/s, {args.channels * args.per_slot:,} posts a slot take "
          f"{args.channels * args.per_slot / GLOBAL_PER_SECOND:.0f} s to send)")
    for w in workers:
        print(f"   worker {w['worker']}: sent {w['sent']:,}, 429 holds {w['flood_waits']}, slot runs skipped "
              f"(still running) {w['skipped_runs']}, peak RSS {w['vm_hwm_kb'] / 1024:.0f} MB, cpu "
              f"{w['cpu_s']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=2, help="slots fired (at most 4)")
    parser.add_argument("--per-slot", type=int, default=1)
    parser.add_argument("--slot-gap", type=float, default=None, help="seconds between the slots' fires (default: "
                        "a slot's sends at the ceiling, plus a minute: a job still running skips its next slot)")
    parser.add_argument("--concurrency", type=int, default=1, help="publish.concurrency of each worker")
    parser.add_argument("--profile", help="cProfile each worker into PROFILE-a, PROFILE-b")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the sends")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a worker's spec file (internal)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(Path(args.worker).read_text())
        if spec.get("profile"):
            import cProfile

            profiler = cProfile.Profile()
            result = profiler.runcall(asyncio.run, work(spec))
            profiler.dump_stats(spec["profile"])
        else:
            result = asyncio.run(work(spec))
        result["cpu_s"] = time.process_time()
        Path(spec["out"]).write_text(json.dumps(result))
        return
    if not args.pg_url:
        parser.error("PostgreSQL is needed: --pg-url or TEST_DATABASE_URL")
    from tests.conftest import fresh_postgres_url
    from tests.fakebotapi import FakeBotApiProcess

    if args.slot_gap is None:
        args.slot_gap = args.channels * args.per_slot / GLOBAL_PER_SECOND + 60
    url = fresh_postgres_url(args.pg_url)
    print(f"channels bench: {args.channels:,} channels x {args.slots} slots x {args.per_slot} post(s), two workers "
          f"(publish.concurrency {args.concurrency}), "
          f"slots {args.slot_gap:.0f} s apart; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    built = prepare(url, args.channels, args.slots, args.per_slot)
    print(f"   {args.channels * args.slots * args.per_slot:,} items and the channels stored in {built:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "fake.json"
        fake = FakeBotApiProcess(Path(tmp) / "unused.json")
        fake._args = [sys.executable, "-c", _FAKE.format(g=GLOBAL_PER_SECOND, c=CHANNEL_PER_MINUTE, n=args.channels,
                                                         first=FIRST_CHAT, out=str(summary))]
        fake.start()
        try:
            start = time.time() + 20  # the workers' start-up
            fire_at = [start + k * args.slot_gap for k in range(args.slots)]
            day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            slots = [(day + timedelta(hours=int(entry.split()[1]))).isoformat() for entry in SCHEDULE[:args.slots]]
            procs = []
            for name in ("a", "b"):
                spec = {"url": url, "base_url": fake.base_url, "token": fake.token, "channels": args.channels,
                        "per_slot": args.per_slot, "worker": name, "concurrency": args.concurrency, "fire_at": fire_at, "slots": slots,
                        "timeout": args.timeout, "out": str(Path(tmp) / f"worker-{name}.json"),
                        "profile": f"{args.profile}-{name}" if args.profile else None}
                (Path(tmp) / f"spec-{name}.json").write_text(json.dumps(spec))
                procs.append(subprocess.Popen([sys.executable, __file__, "--worker", str(Path(tmp) / f"spec-{name}.json")],
                                              cwd=ROOT))
            for proc in procs:
                proc.wait()
            workers = [json.loads((Path(tmp) / f"worker-{n}.json").read_text()) for n in ("a", "b")]
        finally:
            fake.stop()
        sent = json.loads(summary.read_text())
    report(url, args, fire_at, slots, sent, workers)


if __name__ == "__main__":
    main()
