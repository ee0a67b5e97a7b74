"""`digestbot run`'s memory with 1,000,000 items and 1,000 channels, against the same run on 1,000 items.

    .venv/bin/python bench/memory.py [--items 1000000] [--channels 1000] [--minutes 5] [--keep]
    .venv/bin/python bench/memory.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The archive is bench/search.py's: the real seeds and corpus, multiplied up to the size with its
generator and bulk loader (search index included), so 1,000,000 items load in minutes. With
--keep the database stays in --workdir (SQLite) or in a fixed schema (PostgreSQL) and the next
run reuses it; its channels, posts and deliveries are deleted before every run, so each run starts
as the first.

Each run is `digestbot run` as a subprocess, sending to a fake Bot API in a process of its own
(Telegram's limits: 30 messages/s overall, 20 a minute per channel; no state file), so posts are
really sent over HTTP and recorded. The 1,000 channels mix single posts and digests, oldest-first,
newest-first, a category filter and a few shuffles; each has an interval slot (every 2, 3 or 4
minutes) and a cron slot every 10 minutes, so most fire once or twice in the run. VmRSS and VmHWM
are read from /proc/PID/status every second. The baseline, measured in the same invocation and
with the same config and duration, is the run on an archive of --baseline-items items.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from sqlalchemy import create_engine, delete, func, select, text  # noqa: E402

from bench.publish import fake_process  # noqa: E402
from bench.search import SHARED, corpus_characters, generate, load_bases, load_postgres, load_sqlite  # noqa: E402
from digests.ingest.pipeline import ingest  # noqa: E402
from digests.store import open_database  # noqa: E402
from digests.store.db import Database, normalise_url  # noqa: E402
from digests.store.models import AuditEntry, Channel, Item, Post  # noqa: E402

DIGESTBOT = Path(sys.executable).parent / "digestbot"
AIM_MB = 200
CHAT_BASE = -1006000000000


# ---------------------------------------------------------------------------------------------
# The archive and the config


def database_url(backend: str, size: int, workdir: Path, pg_url: str | None) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'memory-{size}.db'}"
    assert pg_url
    base = normalise_url(pg_url)
    schema = f"bench_memory_{size}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def drop_database(backend: str, size: int, workdir: Path, pg_url: str | None) -> None:
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{workdir / f'memory-{size}.db'}{suffix}").unlink(missing_ok=True)
        return
    assert pg_url
    engine = create_engine(normalise_url(pg_url))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "bench_memory_{size}" CASCADE'))
    engine.dispose()


def build_archive(db: Database, size: int, seed: int) -> int:
    """The real archive multiplied up to ``size`` items by bench/search.py's generator; the item count."""
    with db.session() as session:
        stored = session.scalar(select(func.count()).select_from(Item)) or 0
    if stored >= size:
        return stored
    if stored:
        raise SystemExit(f"{db.url}: {stored:,} items, not {size:,}: drop it or give another --workdir")
    started = time.perf_counter()
    ingest(db, [SHARED / "seeds", SHARED / "corpus"])
    bases = load_bases(db)
    with db.session() as session:
        first_id = (session.scalar(select(func.max(Item.id))) or 0) + 1
    extra = max(0, size - len(bases))
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] % 200_000 < n or done[0] == extra:
            print(f"    loaded {done[0]:,}/{extra:,} in {time.perf_counter() - started:.0f} s", flush=True)

    rows = generate(bases, corpus_characters(bases), first_id, extra, seed)
    (load_postgres if db.dialect == "postgresql" else load_sqlite)(db, rows, progress)
    return len(bases) + extra


def reset_channels(db: Database) -> None:
    """Every channel gone, with its posts, deliveries and edits (they cascade): each run starts afresh."""
    with db.session() as session:
        session.execute(delete(AuditEntry))
        session.execute(delete(Channel))


def chat_of(k: int) -> int:
    return CHAT_BASE - k


def channel_config(k: int) -> dict[str, Any]:
    """Channel k: a third digests, the rest single posts; orders and filters varied; two slots each."""
    digest = k % 3 == 0
    select_rules: dict[str, Any] = {}
    if k % 50 == 7:
        select_rules["order"] = "shuffle"
    elif k % 4 == 1:
        select_rules["order"] = "newest"
    if k % 5 == 2:
        select_rules["categories"] = ["硬核观察"]
    return {
        "name": f"m{k:04d}",
        "chat_id": chat_of(k),
        "mode": "digest" if digest else "single",
        "per_slot": 5 if digest else 2,
        "schedule": [f"every {2 + k % 3}m", f"{k % 10}-59/10 * * * *"],
        "select": select_rules,
    }


def write_config(path: Path, db_url: str, channels: int, fake: Any | None) -> None:
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "channels": [channel_config(k) for k in range(channels)],
        "log_level": "WARNING",
    }
    if fake is not None:
        data["telegram"] = {"token": fake.token, "base_url": fake.base_url, "request_timeout": 20}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# One run


@dataclass
class Run:
    label: str
    items: int
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds, VmRSS kB, VmHWM kB)
    posts: int = 0
    sent: int = 0
    cpu_s: float = 0.0

    @property
    def peak_mb(self) -> float:
        return max(hwm for _, _, hwm in self.samples) / 1024

    def rss_mb_at(self, second: float) -> float:
        return next((rss for t, rss, _ in self.samples if t >= second), self.samples[-1][1]) / 1024

    @property
    def end_mb(self) -> float:
        return self.samples[-1][1] / 1024


def status_kb(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# `digestbot` under tracemalloc, a snapshot every TRACE_INTERVAL seconds into TRACE_DIR (--tracemalloc).
_TRACED = """
import os, sys, threading, time, tracemalloc
tracemalloc.start(int(os.environ.get("TRACE_FRAMES", "10")))
def dump():
    n = 0
    while True:
        time.sleep(float(os.environ["TRACE_INTERVAL"]))
        n += 1
        tracemalloc.take_snapshot().dump(os.path.join(os.environ["TRACE_DIR"], f"snap{n:03d}.pickle"))
threading.Thread(target=dump, daemon=True).start()
from bot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_bot(config: Path, run: Run, seconds: float, db: Database, log: Path, fake: Any | None,
            trace: Path | None = None) -> Run:
    reset_channels(db)
    sent_before = len(fake.state()["sent"]) if fake is not None else 0
    command = [sys.executable, "-c", _TRACED] if trace is not None else [str(DIGESTBOT)]
    args = [*command, "--config", str(config), "run"] + ([] if fake is not None else ["--dry-run"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if trace is not None:
        trace.mkdir(parents=True, exist_ok=True)
        env.update(TRACE_DIR=str(trace), TRACE_INTERVAL="30")
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=config.parent, stdout=subprocess.DEVNULL if fake is None else out,
                                stderr=out, env=env)
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            if proc.poll() is not None:
                raise SystemExit(f"digestbot run exited with {proc.returncode}; see {log}")
            rss, hwm = status_kb(proc.pid)
            run.samples.append((elapsed, rss, hwm))
            if len(run.samples) % 60 == 0:
                print(f"    {run.label}: {elapsed:4.0f} s  RSS {rss / 1024:6.1f} MB  peak {hwm / 1024:6.1f} MB",
                      flush=True)
            time.sleep(1.0)
        run.cpu_s = cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with db.session() as session:
        run.posts = session.scalar(select(func.count()).select_from(Post)) or 0
    run.sent = (len(fake.state()["sent"]) - sent_before) if fake is not None else 0
    return run


def print_run(run: Run, aim: float) -> None:
    print(f"  {run.label:<28} {run.items:>9,} items  RSS at 30 s {run.rss_mb_at(30):6.1f} MB, at end "
          f"{run.end_mb:6.1f} MB, peak (VmHWM) {run.peak_mb:6.1f} MB ({run.peak_mb / aim:.2f} of the {aim:.0f} MB aim)"
          f"; {run.posts:,} posts planned, {run.sent:,} sent; CPU {run.cpu_s:.0f} s", flush=True)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--baseline-items", type=int, default=1_000)
    parser.add_argument("--channels", type=int, default=1_000)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long each run lasts")
    parser.add_argument("--backends", nargs="+", default=None, choices=["sqlite", "postgresql"])
    parser.add_argument("--pg-url", default=os.environ.get("PG_URL"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument("--dry-run", action="store_true", help="`run --dry-run` instead of the fake Bot API")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--keep", action="store_true", help="keep the databases for the next run")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--tracemalloc", type=Path, metavar="DIR",
                        help="run the bot under tracemalloc, a snapshot every 30 s into DIR/<backend>-<items>/")
    args = parser.parse_args()
    if not (SHARED / "seeds").is_dir():
        raise SystemExit(f"{SHARED} is needed (the real archive to multiply)")
    backends = args.backends or (["sqlite", "postgresql"] if args.pg_url else ["sqlite"])
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        fake = None if args.dry_run else fake_process(tmp).start()
        try:
            if fake is not None:
                for k in range(args.channels):
                    fake.control("channel", chat_id=chat_of(k), title=f"memory {k}")
            for backend in backends:
                sizes = [("baseline", args.baseline_items)] if not args.skip_baseline else []
                for label, size in [*sizes, ("archive", args.items)]:
                    url = database_url(backend, size, args.workdir, args.pg_url)
                    db = open_database(url)
                    try:
                        print(f"  {backend} {size:,} items: building or reusing the archive", flush=True)
                        stored = build_archive(db, size, args.seed)
                        config = Path(tmp) / f"{backend}-{size}.yaml"
                        write_config(config, url, args.channels, fake)
                        run = run_bot(config, Run(f"{backend} {label}", stored), args.minutes * 60, db,
                                      Path(tmp) / "digestbot.log", fake,
                                      args.tracemalloc / f"{backend}-{size}" if args.tracemalloc else None)
                        runs.append(run)
                        print_run(run, AIM_MB)
                    finally:
                        db.dispose()
                        if not args.keep:
                            drop_database(backend, size, args.workdir, args.pg_url)
        finally:
            if fake is not None:
                fake.stop()
            errors = (Path(tmp) / "digestbot.log")
            if errors.exists() and errors.stat().st_size:
                print("digestbot's log (warnings and errors), last lines:")
                print("\n".join(errors.read_text(errors="replace").splitlines()[-20:]))
    mode = "dry run" if args.dry_run else "fake Bot API"
    print(f"\nsummary: `digestbot run`, {args.channels:,} channels, {args.minutes:g} min each, {mode}")
    for run in runs:
        print_run(run, AIM_MB)
    for backend in backends:
        pair = [r for r in runs if r.label.startswith(backend)]
        if len(pair) == 2:
            print(f"  {backend}: peak {pair[1].peak_mb:.1f} MB against {pair[0].peak_mb:.1f} MB on "
                  f"{pair[0].items:,} items ({pair[1].peak_mb / pair[0].peak_mb:.2f}x); aim under {AIM_MB} MB: "
                  f"{'met' if pair[1].peak_mb < AIM_MB else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps([run.__dict__ for run in runs], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
