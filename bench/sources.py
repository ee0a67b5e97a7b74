"""Sources: 1,000 feeds on a local server (first round, then all unchanged), a git repository of
10,000 Markdown documents (first ingest, then a commit changing 10), and `digestbot run`'s memory.

Baselines measured in the same run: the first round for the all-304 round (aim: at least 20x
faster), the first ingest for the incremental fetch (aim: well under 1% of it), a bare loop of
the same conditional GETs for the bookkeeping around them, and `digestbot run` without sources
for its memory with 1,000. The feed server runs in a process of its own.

    .venv/bin/python bench/sources.py [--feeds 1000] [--entries 20] [--documents 10000] [--changed 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digests.clock import utcnow  # noqa: E402
from digests.source_config import FetchConfig, SourceConfig  # noqa: E402
from digests.sources.fetch import Fetcher  # noqa: E402
from digests.sources.refresh import Refresher  # noqa: E402
from digests.sources.registry import records, sync_config  # noqa: E402
from digests.store import open_database  # noqa: E402
from tests.feed_server import Entry, FeedServer, entries, linuxcn_markdown, rss  # noqa: E402

DIGESTBOT = Path(sys.executable).parent / "digestbot"
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.org", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.org", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


_FILLER = "开源软件的新版本带来了更快的编译速度、更好的错误提示和更小的内存占用，社区对此反响热烈。"


def feed_entries(n: int, per_feed: int, summary_chars: int) -> list[Entry]:
    """A feed's entries; with summary_chars, each description padded to that length (real feeds'
    descriptions run to hundreds of characters, the fixtures' to one sentence)."""
    found = entries(f"f{n}", per_feed)
    if summary_chars:
        found = [replace(e, summary=(e.summary + _FILLER * (summary_chars // len(_FILLER) + 1))[:summary_chars])
                 for e in found]
    return found


def _serve(feeds: int, per_feed: int, summary_chars: int, ports: Any) -> None:
    with FeedServer() as server:
        for n in range(feeds):
            server.serve(f"/feed/{n}.xml", rss(f"Feed {n}", feed_entries(n, per_feed, summary_chars)))
        ports.put(server.port)
        signal.sigwait([signal.SIGTERM])


class Servers:
    """Feed servers in processes of their own (one Python server answers ~1,000 requests/s)."""

    def __init__(self, count: int, feeds: int, per_feed: int, summary_chars: int = 0) -> None:
        ports: Any = multiprocessing.Queue()
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # each child waits for it with sigwait
        self.processes = [multiprocessing.Process(target=_serve, args=(feeds, per_feed, summary_chars, ports), daemon=True)
                          for _ in range(count)]
        for process in self.processes:
            process.start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        self.ports = [ports.get(timeout=120) for _ in self.processes]

    def urls(self, feeds: int) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[n % len(self.ports)]}/feed/{n}.xml" for n in range(feeds)]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.join(10)


def feed_rounds(workdir: Path, feeds: int, per_feed: int, servers: int, concurrency: int,
                summary_chars: int) -> dict[str, float]:
    server = Servers(servers, feeds, per_feed, summary_chars)
    urls = server.urls(feeds)
    db = open_database(f"sqlite:///{workdir / 'feeds.db'}")
    fetch = FetchConfig(concurrency=concurrency, per_host=concurrency)
    sync_config(db, [SourceConfig(name=f"feed{n}", url=url, interval="every 1h") for n, url in enumerate(urls)],
                utcnow())
    try:
        refresher = Refresher(db, fetch)
        started = time.perf_counter()
        first = refresher.refresh(records(db))
        first_s = time.perf_counter() - started
        assert all(o.status == "ok" for o in first), {o.status for o in first}
        items = sum(o.items_added for o in first)
        started = time.perf_counter()
        second = refresher.refresh(records(db))
        second_s = time.perf_counter() - started
        assert all(o.http_status == 304 for o in second), {o.status for o in second}
        refresher.close()
        # The floor of the second round: the same conditional GETs, nothing recorded.
        validators = {r.location: (r.etag, r.last_modified) for r in records(db)}
        from concurrent.futures import ThreadPoolExecutor

        with Fetcher(fetch) as fetcher, ThreadPoolExecutor(concurrency) as pool:
            started = time.perf_counter()
            statuses = list(pool.map(lambda u: fetcher.get(u, etag=validators[u][0],
                                                           last_modified=validators[u][1]).status, urls))
            floor_s = time.perf_counter() - started
        assert set(statuses) == {304}
    finally:
        db.dispose()
        server.stop()
    return {"feeds": feeds, "items": items, "first_s": first_s, "second_s": second_s, "floor_s": floor_s}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=GIT_ENV).stdout.decode()


def git_rounds(workdir: Path, documents: int, changed: int) -> dict[str, float]:
    work, bare = workdir / "work", workdir / "news.git"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True, env=GIT_ENV)
    for n in range(documents):
        folder = work / f"{n // 1000:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"{n:06d}.md").write_text(linuxcn_markdown(100_000 + n, entries(f"g{n}", 2)), encoding="utf-8")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "archive")
    _git(work, "push", "-q", str(bare), "HEAD:main")
    db = open_database(f"sqlite:///{workdir / 'git.db'}")
    sync_config(db, [SourceConfig(name="repo", url=f"git+file://{bare}", interval="every 1h")], utcnow())
    refresher = Refresher(db, FetchConfig(cache_dir=str(workdir / "cache")))
    try:
        started = time.perf_counter()
        [first] = refresher.refresh(records(db))
        first_s = time.perf_counter() - started
        assert first.report is not None and first.report.documents_new == documents, first
        for n in range(0, documents, max(documents // changed, 1))[:changed]:
            (work / f"{n // 1000:03d}" / f"{n:06d}.md").write_text(
                linuxcn_markdown(100_000 + n, entries(f"g{n}", 3)), encoding="utf-8")
        _git(work, "commit", "-q", "-am", "ten changed")
        _git(work, "push", "-q", str(bare), "HEAD:main")
        started = time.perf_counter()
        [second] = refresher.refresh(records(db))
        second_s = time.perf_counter() - started
        assert second.report is not None and second.report.documents_updated == changed, second
    finally:
        refresher.close()
        db.dispose()
    return {"documents": documents, "items": first.items_added, "changed": changed, "first_s": first_s,
            "second_s": second_s}


def _rss_kb(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def run_memory(workdir: Path, feeds: int, per_feed: int) -> dict[str, float]:
    """`digestbot run --dry-run` without sources, then with `feeds` sources once all are fetched."""
    server = Servers(1, feeds, per_feed)
    port = server.ports[0]
    results: dict[str, float] = {}
    try:
        for label, count in (("none", 0), ("with", feeds)):
            db_file = workdir / f"run-{label}.db"
            config = workdir / f"run-{label}.yaml"
            lines = [f"database: {{url: 'sqlite:///{db_file}'}}", "fetch: {per_host: 8}", "sources:" if count else ""]
            lines += [f"  - {{name: feed{n}, url: 'http://127.0.0.1:{port}/feed/{n}.xml', interval: 'every 1h'}}"
                      for n in range(count)]
            config.write_text("\n".join(lines) + "\n", encoding="utf-8")
            proc = subprocess.Popen([str(DIGESTBOT), "--config", str(config), "run", "--dry-run"], cwd=workdir,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
            try:
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    time.sleep(1)
                    if not db_file.exists():
                        continue
                    try:
                        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30) as conn:
                            fetched = conn.execute("SELECT count(*) FROM sources WHERE last_fetch_at IS NOT NULL"
                                                   ).fetchone()[0]
                    except sqlite3.OperationalError:
                        continue
                    if fetched >= count:
                        break
                time.sleep(2)
                results[f"rss_{label}_kb"], results[f"peak_{label}_kb"] = _rss_kb(proc.pid)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    finally:
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--servers", type=int, default=2, help="feed server processes (hosts)")
    parser.add_argument("--concurrency", type=int, default=8, help="fetch.concurrency and fetch.per_host")
    parser.add_argument("--summary-chars", type=int, default=0,
                        help="pad each entry's description to this many characters (default: one sentence)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-git", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sources-"))
    try:
        feeds = feed_rounds(workdir, args.feeds, args.entries, args.servers, args.concurrency, args.summary_chars)
        print(f"feeds: {feeds['feeds']} feeds, {feeds['items']} items, {args.servers} server process(es), "
              f"{args.concurrency} requests at once")
        print(f"  first round  {feeds['first_s']:7.2f} s  {feeds['feeds'] / feeds['first_s']:8.0f} documents/s "
              f"{feeds['items'] / feeds['first_s']:8.0f} items/s")
        print(f"  all 304      {feeds['second_s']:7.2f} s  {feeds['feeds'] / feeds['second_s']:8.0f} documents/s "
              f"-> {feeds['first_s'] / feeds['second_s']:.1f}x faster than the first round (aim: >= 20x)")
        print(f"  bare 304 GETs {feeds['floor_s']:6.2f} s: the all-304 round costs "
              f"{feeds['second_s'] / feeds['floor_s']:.2f}x the requests alone")
        if not args.skip_git:
            repo = git_rounds(workdir, args.documents, args.changed)
            print(f"git: {repo['documents']} documents, {repo['items']} items")
            print(f"  first ingest {repo['first_s']:7.2f} s  {repo['documents'] / repo['first_s']:8.0f} documents/s")
            print(f"  {repo['changed']} changed   {repo['second_s']:7.3f} s  -> "
                  f"{100 * repo['second_s'] / repo['first_s']:.2f}% of the first ingest (aim: well under 1%)")
        if not args.skip_memory:
            memory = run_memory(workdir, args.feeds, args.entries)
            print(f"digestbot run --dry-run: RSS {memory['rss_none_kb'] / 1024:.0f} MB without sources, "
                  f"{memory['rss_with_kb'] / 1024:.0f} MB with {args.feeds} (peak {memory['peak_with_kb'] / 1024:.0f} MB)"
                  f" -> {memory['rss_with_kb'] / memory['rss_none_kb']:.2f}x")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
