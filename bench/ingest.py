"""Ingest throughput on >= 10,000 documents made by varying the real ones, against a floor.

The floor, measured in the same run: read every file and parse only its YAML front matter
(PyYAML's C loader), the least any ingest must do. Every way of ingesting runs once a round,
each into a fresh database, with a floor run before each: SQLite in one process and with
--jobs 2, and with --database-url PostgreSQL through COPY, through the old INSERT path, and
through COPY with --jobs 2. The fastest of each counts, by the wall clock and by this process's
CPU time (which a busy, shared machine disturbs less). Prints documents/s and the ratios, then
what each way stored (rows per table and a hash of every row, ingest-time stamps aside): the
ways on one database must store the same, or the bench fails.

    .venv/bin/python bench/ingest.py [--documents 10000] [--runs 3]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from digests.ingest.pipeline import ingest  # noqa: E402
from digests.parsers._frontmatter import has_front_matter, split_front_matter  # noqa: E402
from digests.store import open_database  # noqa: E402
from digests.store.db import Database, normalise_url  # noqa: E402
from tests.ingest_helpers import rows_digest, stored_rows  # noqa: E402

SHARED = ROOT.parent / "shared"
T = TypeVar("T")
_URL = re.compile(r"(https?://[^\s\)\]\"'<>\\]+)")


def source_documents() -> list[tuple[str, str]]:
    roots = [SHARED / "seeds", SHARED / "corpus", ROOT / "digests" / "sample_archive"]
    docs = []
    for root in roots:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    docs.append((path.suffix or ".txt", path.read_text(encoding="utf-8-sig")))
    return docs


def vary(text: str, n: int) -> str:
    """Another document like text: every link made unique, the shape kept."""
    text = _URL.sub(lambda m: f"{m.group(1)}{'&' if '?' in m.group(1) else '?'}v={n}", text)
    return text


def build_corpus(folder: Path, count: int) -> int:
    docs = source_documents()
    if not docs:
        sys.exit("no source documents: ../shared and digests/sample_archive are both missing")
    for n in range(count):
        suffix, text = docs[n % len(docs)]
        sub = folder / f"{n // 1000:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"doc{n:06d}{suffix}").write_text(vary(text, n), encoding="utf-8")
    return len(docs)


def floor(folder: Path) -> int:
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            text = path.read_bytes().decode("utf-8")
            if has_front_matter(text):
                split_front_matter(text)
            count += 1
    return count


@dataclass
class Best:
    """The fastest of several runs, by the wall clock and by this process's CPU time."""

    wall: float = float("inf")
    cpu: float = float("inf")

    def time(self, fn: Callable[[], T]) -> T:
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.wall = min(self.wall, time.perf_counter() - wall)
        self.cpu = min(self.cpu, time.process_time() - cpu)
        return result


@dataclass(frozen=True)
class Mode:
    """One way of ingesting: the database and the options."""

    name: str
    postgres: bool
    jobs: int = 1
    copy: bool = True


@contextmanager
def fresh_database(mode: Mode, folder: Path, base_url: str | None, run: int) -> Iterator[Database]:
    """A new empty database: a SQLite file, or a schema of its own on the PostgreSQL server."""
    if not mode.postgres:
        db = open_database(f"sqlite:///{folder / f'bench{uuid.uuid4().hex[:8]}.db'}")
        try:
            yield db
        finally:
            db.dispose()
        return
    assert base_url is not None
    schema = f"bench_ingest_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(base_url))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    db = open_database(f"{normalise_url(base_url)}{sep}options=-csearch_path%3D{schema}")
    try:
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server (postgresql+psycopg://...): each run in a fresh schema of its own")
    parser.add_argument("--runs", type=int, default=3,
                        help="rounds of runs, every mode once a round, each into a fresh database; the fastest counts")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel runs (default: 2)")
    args = parser.parse_args()
    modes = [Mode("SQLite", False), Mode(f"SQLite --jobs {args.jobs}", False, jobs=args.jobs)]
    if args.database_url:
        modes += [Mode("PostgreSQL COPY", True), Mode("PostgreSQL INSERT (old path)", True, copy=False),
                  Mode(f"PostgreSQL COPY --jobs {args.jobs}", True, jobs=args.jobs)]
    floor_best, rerun = Best(), Best()
    best = {mode: Best() for mode in modes}
    stored: dict[Mode, tuple[str, dict[str, int]]] = {}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "corpus"
        folder.mkdir()
        sources = build_corpus(folder, args.documents)
        # Every mode once a round, the floor between them, so that all see the same spells of a
        # busy machine.
        for run in range(args.runs):
            for mode in modes:
                count = floor_best.time(lambda: floor(folder))
                with fresh_database(mode, Path(tmp), args.database_url, run) as db:
                    report = best[mode].time(
                        lambda db=db, mode=mode: ingest(db, [folder], jobs=mode.jobs, copy=mode.copy))
                    if run == 0:
                        rows = stored_rows(db)
                        stored[mode] = (rows_digest(rows), {name: len(table) for name, table in rows.items()})
                    if mode == modes[0] and run == args.runs - 1:
                        again = rerun.time(lambda db=db: ingest(db, [folder]))
    load_after = os.getloadavg()
    items = report.items_new + report.items_duplicate
    print(f"documents: {count} (varied from {sources} real ones), failed: {report.documents_failed}, "
          f"items: {items}; best of {args.runs} runs of each, alternated")
    print(f"load average (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start, "
          f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} at the end; {os.cpu_count()} cores")
    print("                                      wall clock                  CPU time of this process")
    print(f"floor (read + front matter only):     {count / floor_best.wall:9.0f} documents/s"
          f"{count / floor_best.cpu:22.0f} documents/s")
    for mode in modes:
        print(f"{mode.name + ':':37} {count / best[mode].wall:9.0f} documents/s"
              f"{count / best[mode].cpu:22.0f} documents/s")
    sqlite, parallel = modes[0], modes[1]
    print(f"ratio SQLite ingest/floor:            {best[sqlite].wall / floor_best.wall:9.2f}x"
          f"{best[sqlite].cpu / floor_best.cpu:27.2f}x   (target: within 4x)")
    print(f"ratio --jobs {args.jobs} / --jobs 1 (SQLite), rate: {best[sqlite].wall / best[parallel].wall:6.2f}x"
          "   (target: >= 1.6x; CPU of this process only: the workers' is not counted)")
    if args.database_url:
        copy, row, pg_parallel = modes[2], modes[3], modes[4]
        print(f"ratio PostgreSQL COPY / SQLite, rate: {best[sqlite].wall / best[copy].wall:9.2f}"
              f"{best[sqlite].cpu / best[copy].cpu:27.2f}    (target: >= 0.80)")
        print(f"ratio COPY / INSERT (PostgreSQL):     {best[row].wall / best[copy].wall:9.2f}x"
              f"{best[row].cpu / best[copy].cpu:27.2f}x")
        print(f"ratio --jobs {args.jobs} / --jobs 1 (PostgreSQL COPY): {best[copy].wall / best[pg_parallel].wall:5.2f}x")
    print(f"re-ingest, all unchanged (SQLite):    {again.documents_unchanged / rerun.wall:9.0f} documents/s"
          f"{again.documents_unchanged / rerun.cpu:22.0f} documents/s")
    print("stored (ingest-time stamps aside): rows per table, hash of every row")
    for mode in modes:
        digest, counts = stored[mode]
        print(f"  {mode.name + ':':35} {digest}  " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
    for group in ([m for m in modes if not m.postgres], [m for m in modes if m.postgres]):
        if len({stored[m][0] for m in group}) > 1:
            sys.exit(f"the stored results differ between {', '.join(m.name for m in group)}")
    print("same stored result: " + "; ".join(
        " = ".join(m.name for m in group) for group in ([m for m in modes if not m.postgres],
                                                       [m for m in modes if m.postgres]) if group))


if __name__ == "__main__":
    main()
